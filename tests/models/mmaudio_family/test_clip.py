"""CLIP image/text towers (DFN5B layout) against open_clip + MMAudio's glue (tests/fixtures/mmaudio-family)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from models.mmaudio_family.clip import OpenClip
from models.mmaudio_family.parity_vision import clip_parity
from tests.models.helpers import single_thread  # noqa: F401  (autouse)

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "mmaudio-family"


def _tiny() -> OpenClip:
    meta = json.loads((FIX / "clip_tiny.json").read_text())
    return OpenClip.from_official(FIX / "clip_tiny.safetensors", meta["constructor"])


def test_parity_with_open_clip_and_mmaudio_glue() -> None:
    errors = clip_parity(FIX)
    assert errors["text_tokens"] == 0, errors
    assert max(errors.values()) <= 1e-4, errors


def test_pooled_text_embedding_is_the_projected_end_of_text_feature() -> None:
    # Independent of our text tower: the reference per-token features, picked at the end-of-text
    # position and projected with the checkpoint's text_projection (normalising twice is harmless).
    io = load_file(str(FIX / "clip_tiny_io.safetensors"))
    proj = load_file(str(FIX / "clip_tiny.safetensors"))["text_projection"]
    tokens = io["text_tokens"]
    eot = (tokens == 49407).int().argmax(-1)
    ref = F.normalize(io["text_features"][torch.arange(len(tokens)), eot] @ proj, dim=-1)
    pooled = _tiny().encode_text_pooled(tokens)
    assert pooled.shape == (len(tokens), proj.shape[1])
    assert (pooled - ref).abs().max() <= 1e-5


def test_real_size_keys_and_shapes_match_dfn5b() -> None:
    manifest = json.loads((FIX / "mmaudio_features_state_dict_manifest.json").read_text())
    (entry,) = [v for k, v in manifest.items() if k.startswith("clip ")]
    with torch.device("meta"):
        model = OpenClip()
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == entry["keys"]
    assert sum(p.numel() for p in model.parameters()) == entry["num_parameters"]


def test_strict_loading_names_what_was_expected() -> None:
    sd = load_file(str(FIX / "clip_tiny.safetensors"))
    cfg = json.loads((FIX / "clip_tiny.json").read_text())["constructor"]
    with pytest.raises(ValueError, match="unexpected: visual.attnpool.x") as err:
        OpenClip.from_official({**sd, "visual.attnpool.x": torch.ones(1)}, cfg)
    assert "\n" not in str(err.value) and "expected" in str(err.value)
    with pytest.raises(ValueError, match="missing: ln_final.bias"):
        OpenClip.from_official({k: v for k, v in sd.items() if k != "ln_final.bias"}, cfg)


def test_384_frames_use_the_378_grid_and_other_sizes_are_refused() -> None:
    model = _tiny()
    x = torch.rand(1, 3, 384, 384, generator=torch.Generator().manual_seed(0))
    # Rows/columns 378‥383 are outside every patch: changing them changes nothing.
    y = x.clone()
    y[..., 378:, :] = 0.0
    y[..., :, 378:] = 1.0
    assert torch.equal(model.encode_image(x), model.encode_image(y))
    assert torch.equal(model.encode_image(x), model.encode_image(x[..., :378, :378]))
    with pytest.raises(ValueError, match="patch grid"):
        model.encode_image(torch.rand(1, 3, 392, 392))


def test_text_features_are_causal_and_unit_norm() -> None:
    model = _tiny()
    a = torch.tensor([[49406, 320, 1929, 32676, 49407] + [0] * 72])
    b = a.clone()
    b[0, 3] = 1000
    fa, fb = model.encode_text(a), model.encode_text(b)
    assert fa.shape == (1, 77, 6)
    assert torch.allclose(fa.norm(dim=-1), torch.ones(1, 77), atol=1e-5)
    assert torch.equal(fa[:, :3], fb[:, :3])  # earlier positions do not see later tokens
    assert not torch.allclose(fa[:, 3:], fb[:, 3:])


def test_save_and_load_pretrained_round_trip(tmp_path: Path) -> None:
    model = _tiny()
    model.save_pretrained(tmp_path / "clip")
    again = OpenClip.from_pretrained(tmp_path / "clip").eval()
    tokens = torch.tensor([[49406, 320, 49407] + [0] * 74])
    assert torch.equal(again.encode_text(tokens), model.encode_text(tokens))
    video = torch.rand(1, 2, 3, 384, 384, generator=torch.Generator().manual_seed(2))
    assert torch.equal(again.encode_video(video), model.encode_video(video))
