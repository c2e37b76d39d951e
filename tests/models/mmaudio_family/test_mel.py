"""MelConverter against the official converter's numbers (tests/fixtures/mmaudio-family)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from models.mmaudio_family.mel import MODES, MelConverter, slaney_mel_basis
from models.mmaudio_family.parity_audio import mel_config, parity

from tests.models.helpers import single_thread  # noqa: F401  (autouse)
from tests.models.mmaudio_family.audio_helpers import FIX, manifest_entry, max_err, shapes

MODE_NAMES = ["16k", "44k"]


@pytest.mark.parametrize("mode", MODE_NAMES)
def test_mel_parity_with_official(mode: str) -> None:
    errors = parity(FIX / f"mel_converter_{mode}.json")
    assert set(errors) == {"mel"}
    assert errors["mel"] <= 1e-4, errors


@pytest.mark.parametrize("mode", MODE_NAMES)
def test_buffers_recomputed_without_librosa(mode: str) -> None:
    """The Slaney basis and periodic Hann window we compute equal librosa's / the official buffers."""
    official = load_file(str(FIX / f"mel_converter_{mode}.safetensors"))
    ours = MelConverter.from_mode(mode)
    assert torch.equal(ours.mel_basis, official["mel_basis"])
    assert torch.equal(ours.hann_window, official["hann_window"])


def test_fixture_constructor_maps_to_the_modes() -> None:
    for mode in MODE_NAMES:
        meta = json.loads((FIX / f"mel_converter_{mode}.json").read_text())
        assert mel_config(meta["constructor"]) == MODES[mode]


def test_log_base_and_clamp_matter() -> None:
    """Changing the log base changes the output: the parity above is not vacuous."""
    io = load_file(str(FIX / "mel_converter_16k_io.safetensors"))
    wrong = MelConverter(**{**MODES["16k"], "log": "ln"})
    assert max_err(wrong(io["wave"]), io["mel"]) > 0.1
    basis = slaney_mel_basis(16000, 1024, 80, 0.0, 4000.0)
    assert max_err(basis, MelConverter.from_mode("16k").mel_basis) > 1e-3


@pytest.mark.parametrize("mode", MODE_NAMES)
def test_real_size_keys_and_shapes_match_manifest(mode: str) -> None:
    with torch.device("meta"):
        module = MelConverter.from_mode(mode)
    assert shapes(module) == manifest_entry(f"mel_converter_{mode}")["keys"]


def test_strict_load_names_what_is_missing() -> None:
    sd = load_file(str(FIX / "mel_converter_44k.safetensors"))
    del sd["hann_window"]
    with pytest.raises(ValueError, match="hann_window"):
        MelConverter.from_official(sd, "44k")
    with pytest.raises(ValueError, match=r"wrong shape: hann_window .*; mel_basis expected \[80, 513\]"):
        MelConverter.from_official(load_file(str(FIX / "mel_converter_44k.safetensors")), "16k")


def test_save_and_load_pretrained(tmp_path: Path) -> None:
    mel = MelConverter.from_official(FIX / "mel_converter_44k.safetensors", "44k")
    mel.save_pretrained(tmp_path / "mel")
    again = MelConverter.from_pretrained(tmp_path / "mel")
    io = load_file(str(FIX / "mel_converter_44k_io.safetensors"))
    assert again.config.log == "ln" and again.hop_size == 512
    assert torch.equal(again(io["wave"]), mel(io["wave"]))
