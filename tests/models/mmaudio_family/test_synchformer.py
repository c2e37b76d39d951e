"""Synchformer's visual branch against the official code's numbers (tests/fixtures/mmaudio-family)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from models.mmaudio_family.parity_vision import synchformer_config, synchformer_parity
from models.mmaudio_family.synchformer import Synchformer
from tests.models.helpers import single_thread  # noqa: F401  (autouse)

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "mmaudio-family"


def _tiny() -> Synchformer:
    meta = json.loads((FIX / "synchformer_tiny.json").read_text())
    return Synchformer.from_official(FIX / "synchformer_tiny.safetensors", synchformer_config(meta["constructor"]))


def test_parity_with_official_synchformer() -> None:
    errors = synchformer_parity(FIX)
    assert set(errors) == {"sync_features", "synchformer_segments_out", "vit_tokens"}
    assert max(errors.values()) <= 1e-4, errors


def test_real_size_keys_and_shapes_match_the_official_checkpoint() -> None:
    manifest = json.loads((FIX / "mmaudio_features_state_dict_manifest.json").read_text())
    (entry,) = [v for k, v in manifest.items() if k.startswith("synchformer")]
    with torch.device("meta"):
        model = Synchformer()
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == entry["keys"]
    assert sum(p.numel() for p in model.parameters()) == entry["num_parameters"]


def test_from_official_drops_other_branches_and_is_strict_on_its_own() -> None:
    sd = load_file(str(FIX / "synchformer_tiny.safetensors"))
    cfg = synchformer_config(json.loads((FIX / "synchformer_tiny.json").read_text())["constructor"])
    # The released file also holds the audio branch and the sync head: they are ignored.
    extra = {**sd, "afeat_extractor.blocks.0.norm1.weight": torch.ones(3), "transformer.x": torch.ones(1)}
    Synchformer.from_official(extra, cfg)
    broken = {k: v for k, v in sd.items() if k != "vfeat_extractor.temp_embed"}
    with pytest.raises(ValueError, match="missing: vfeat_extractor.temp_embed") as err:
        Synchformer.from_official(broken, cfg)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="wrong shape"):
        Synchformer.from_official({**sd, "vfeat_extractor.temp_embed": torch.zeros(1, 9, 32)}, cfg)


def test_segments_overlap_by_half_and_chunked_encoding_is_the_same() -> None:
    model = _tiny()
    video = torch.rand(1, 40, 3, 224, 224, generator=torch.Generator().manual_seed(0)) * 2 - 1
    seg = model.segment(video)
    assert seg.shape == (1, 4, 16, 3, 224, 224)  # (40 − 16) // 8 + 1
    assert torch.equal(seg[0, 1, :8], seg[0, 0, 8:])
    assert torch.equal(seg[0, 3], video[0, 24:40])
    whole = model.encode(video)
    assert whole.shape == (1, 32, 32)
    assert torch.allclose(model.encode(video, batch_size=3), whole, atol=1e-6)
    with pytest.raises(ValueError, match="at least 16 frames"):
        model.encode(video[:, :15])


def test_save_and_load_pretrained_round_trip(tmp_path: Path) -> None:
    model = _tiny()
    model.save_pretrained(tmp_path / "synchformer")
    again = Synchformer.from_pretrained(tmp_path / "synchformer").eval()
    assert again.config.embed_dim == model.config.embed_dim
    video = torch.rand(1, 16, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    assert torch.equal(again.encode(video), model.encode(video))
