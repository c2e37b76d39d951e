"""BigVGAN / BigVGAN-v2 against the official vocoders' numbers (tests/fixtures/mmaudio-family)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from models.mmaudio_family.bigvgan import PRESETS, BigVGAN, config_from_official, fold_weight_norm
from models.mmaudio_family.parity_audio import parity

from tests.models.helpers import single_thread  # noqa: F401  (autouse)
from tests.models.mmaudio_family.audio_helpers import FIX, manifest_entry, max_err, meta_state_dict, shapes

# (fixture stem, v2?, manifest entry, our preset)
VOCODERS = [("bigvgan_16k_tiny", False, "bigvgan_16k", "16k"), ("bigvgan_v2_44k_tiny", True, "bigvgan_v2_44k", "44k")]
TO_PARAMETRIZATION = {".weight_g": ".parametrizations.weight.original0",
                      ".weight_v": ".parametrizations.weight.original1"}


def _renamed(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in sd.items():
        for old, new in TO_PARAMETRIZATION.items():
            if k.endswith(old):
                k = k[: -len(old)] + new
        out[k] = v
    return out


def _config(stem: str, v2: bool) -> dict:
    return config_from_official(json.loads((FIX / f"{stem}.json").read_text())["constructor"], v2=v2)


@pytest.mark.parametrize("stem,v2,entry,preset", VOCODERS)
def test_vocoder_parity_with_official(stem: str, v2: bool, entry: str, preset: str) -> None:
    errors = parity(FIX / f"{stem}.json")
    assert set(errors) == {"wav"} and errors["wav"] <= 1e-4, errors


@pytest.mark.parametrize("stem,v2,entry,preset", VOCODERS)
def test_both_weight_norm_namings_load_the_same_vocoder(stem: str, v2: bool, entry: str, preset: str) -> None:
    legacy = load_file(str(FIX / f"{stem}.safetensors"))
    assert any(k.endswith(".weight_g") for k in legacy)
    io = load_file(str(FIX / f"{stem}_io.safetensors"))
    a = BigVGAN.from_official(legacy, _config(stem, v2))
    b = BigVGAN.from_official(_renamed(legacy), _config(stem, v2))
    with torch.no_grad():
        wav = b(io["mel"])
        assert torch.equal(a(io["mel"]), wav)
    assert max_err(wav, io["wav"]) <= 1e-4
    # Weight norm is folded: plain weights only, the effective weight g·v/‖v‖.
    assert not any("weight_g" in k or "parametrizations" in k for k in b.state_dict())
    v, g = legacy["conv_pre.weight_v"], legacy["conv_pre.weight_g"]
    assert torch.allclose(b.conv_pre.weight, g * v / v.norm(dim=(1, 2), keepdim=True), atol=1e-7)


@pytest.mark.parametrize("stem,v2,entry,preset", VOCODERS)
def test_final_layer_and_filters(stem: str, v2: bool, entry: str, preset: str) -> None:
    """tanh + biased conv_post (v1) vs clamp, no bias (v2 512x); Kaiser-sinc filters recomputed bit for bit."""
    cfg = _config(stem, v2)
    assert cfg["use_tanh_at_final"] is (not v2) and cfg["use_bias_at_final"] is (not v2)
    fresh = BigVGAN(**cfg)
    official = load_file(str(FIX / f"{stem}.safetensors"))
    filters = [k for k in fresh.state_dict() if k.endswith(".filter")]
    assert len(filters) == 2 * (1 + 6 * len(cfg["upsample_rates"]) * len(cfg["resblock_kernel_sizes"]))
    for k in filters:
        assert torch.equal(fresh.state_dict()[k], official[k]), k
    # Swapping the final non-linearity changes the numbers: the flag is exercised by the fixture.
    io = load_file(str(FIX / f"{stem}_io.safetensors"))
    wrong = BigVGAN.from_official(official, {**cfg, "use_tanh_at_final": v2})
    with torch.no_grad():
        assert max_err(wrong(io["mel"]), io["wav"]) > 1e-3


@pytest.mark.parametrize("stem,v2,entry,preset", VOCODERS)
@pytest.mark.parametrize("naming", ["keys", "keys_legacy_weight_norm"])
def test_real_size_keys_and_shapes_match_manifest(stem: str, v2: bool, entry: str, preset: str, naming: str) -> None:
    official = manifest_entry(entry)[naming]
    if naming == "keys":
        assert any(".parametrizations.weight.original0" in k for k in official)
    module = BigVGAN.from_official(meta_state_dict(official), preset)
    folded = {k: list(v.shape) for k, v in fold_weight_norm(meta_state_dict(official)).items()}
    assert shapes(module) == folded
    with torch.device("meta"):
        assert shapes(BigVGAN(**PRESETS[preset])) == folded
    assert module.hop_length == {"16k": 256, "44k": 512}[preset]


def test_bad_checkpoints_are_refused_in_one_line() -> None:
    sd = load_file(str(FIX / "bigvgan_16k_tiny.safetensors"))
    half = {k: v for k, v in sd.items() if k != "conv_pre.weight_v"}
    with pytest.raises(ValueError, match="conv_pre.weight_g has no matching v"):
        BigVGAN.from_official(half, _config("bigvgan_16k_tiny", False))
    # The 16k checkpoint (biased conv_post) into the v2 layout (no bias).
    with pytest.raises(ValueError, match="unexpected: conv_post.bias") as info:
        BigVGAN.from_official(sd, {**_config("bigvgan_16k_tiny", False), "use_bias_at_final": False})
    assert "\n" not in str(info.value)


def test_save_and_load_pretrained(tmp_path: Path) -> None:
    voc = BigVGAN.from_official({"generator": load_file(str(FIX / "bigvgan_v2_44k_tiny.safetensors"))},
                                _config("bigvgan_v2_44k_tiny", True))
    voc.save_pretrained(tmp_path / "vocoder")
    again = BigVGAN.from_pretrained(tmp_path / "vocoder").eval()
    io = load_file(str(FIX / "bigvgan_v2_44k_tiny_io.safetensors"))
    with torch.no_grad():
        assert torch.equal(again(io["mel"]), voc(io["mel"]))
    assert again.config.use_tanh_at_final is False and again.hop_length == 64
