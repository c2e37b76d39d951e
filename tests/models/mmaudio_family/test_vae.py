"""MelVAE against the official VAE's numbers (tests/fixtures/mmaudio-family/vae_*_tiny)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from models.mmaudio_family.parity_audio import parity_rows
from models.mmaudio_family.vae import PRESETS, MelVAE

from tests.models.helpers import single_thread  # noqa: F401  (autouse)
from tests.models.mmaudio_family.audio_helpers import FIX, manifest_entry, max_err, meta_state_dict, shapes

MODES = ["16k", "44k"]
OUTPUTS = {"moments", "posterior_mean", "posterior_std", "decoded_from_mean", "decoded_z",
           "encoder_conv_in_weight_normalized"}


def _tiny(mode: str) -> MelVAE:
    cfg = json.loads((FIX / f"vae_{mode}_tiny.json").read_text())["constructor"]
    return MelVAE.from_official(FIX / f"vae_{mode}_tiny.safetensors", cfg)


@pytest.mark.parametrize("mode", MODES)
def test_vae_parity_with_official(mode: str) -> None:
    rows = parity_rows(FIX / f"vae_{mode}_tiny.json")
    assert {r["output"] for r in rows} == OUTPUTS
    for r in rows:
        # 1e-4 absolute everywhere; decoded mels may use 1e-5 relative (README tolerance).
        assert r["ok"], r
        if r["output"] not in ("decoded_from_mean", "decoded_z"):
            assert r["max_abs_error"] <= 1e-4, r


def test_unfolded_weights_or_missing_gain_break_parity() -> None:
    """The fold and the learnable gains are visible in the numbers (the parity is not vacuous)."""
    io = load_file(str(FIX / "vae_16k_tiny_io.safetensors"))
    vae = _tiny("16k")
    with torch.no_grad():
        vae.decoder.learnable_gain.zero_()
        assert max_err(vae.decode(io["z"]), io["decoded_z"]) > 1e-2
    raw = load_file(str(FIX / "vae_16k_tiny.safetensors"))
    unfolded = MelVAE(**json.loads((FIX / "vae_16k_tiny.json").read_text())["constructor"])
    unfolded.load_state_dict(raw)
    with torch.no_grad():
        assert max_err(unfolded.encode(io["mel"])[0], io["posterior_mean"]) > 1e-2


@pytest.mark.parametrize("mode", MODES)
def test_real_size_keys_and_shapes_match_manifest(mode: str) -> None:
    entry = manifest_entry(f"vae_{mode}")
    with torch.device("meta"):
        module = MelVAE(**PRESETS[mode])
    assert shapes(module) == entry["keys"]
    assert sum(p.numel() for p in module.parameters()) == entry["num_parameters"]
    # The official-checkpoint path (strict check, fold) runs on shape-only tensors too.
    loaded = MelVAE.from_official(meta_state_dict(entry["keys"]), mode)
    assert shapes(loaded) == entry["keys"]


def test_wrong_checkpoint_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match=r"MelVAE\(data_dim=80.*wrong shape") as info:
        MelVAE.from_official(FIX / "vae_44k_tiny.safetensors", {"data_dim": 80, "embed_dim": 20, "hidden_dim": 8})
    assert "\n" not in str(info.value)
    sd = load_file(str(FIX / "vae_16k_tiny.safetensors"))
    del sd["decoder.learnable_gain"]
    with pytest.raises(ValueError, match="missing: decoder.learnable_gain"):
        MelVAE.from_official(sd, {"data_dim": 80, "embed_dim": 20, "hidden_dim": 8})


def test_save_and_load_pretrained(tmp_path: Path) -> None:
    vae = _tiny("44k")
    vae.save_pretrained(tmp_path / "vae")
    again = MelVAE.from_pretrained(tmp_path / "vae").eval()
    io = load_file(str(FIX / "vae_44k_tiny_io.safetensors"))
    with torch.no_grad():
        assert torch.equal(again.encode(io["mel"])[0], vae.encode(io["mel"])[0])
        assert torch.equal(again.decode(io["z"]), vae.decode(io["z"]))
    assert again.config.hidden_dim == 8 and again.downsampling == 2
