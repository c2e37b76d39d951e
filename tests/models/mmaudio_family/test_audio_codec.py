"""MMAudioCodec (mel converter + VAE + vocoder) against the official FeaturesUtils chain, and its
codec interface (what models/generation/pipeline.py calls)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from models.mmaudio_family.bigvgan import config_from_official, fold_weight_norm
from models.mmaudio_family.codec import MMAudioCodec
from models.mmaudio_family.parity_audio import parity_rows

from tests.models.helpers import single_thread  # noqa: F401  (autouse)
from tests.models.mmaudio_family.audio_helpers import FIX, manifest_entry, max_err, meta_state_dict, shapes

MODES = {"16k": ("bigvgan_16k_tiny", False), "44k": ("bigvgan_v2_44k_tiny", True)}
OUTPUTS = {"mel", "posterior_mean", "posterior_std", "decoded_mel", "wav", "wav_from_posterior_mean"}


def _tiny(mode: str) -> MMAudioCodec:
    voc, v2 = MODES[mode]
    vae_cfg = json.loads((FIX / f"vae_{mode}_tiny.json").read_text())["constructor"]
    voc_cfg = config_from_official(json.loads((FIX / f"{voc}.json").read_text())["constructor"], v2=v2)
    return MMAudioCodec.from_official(FIX / f"vae_{mode}_tiny.safetensors", FIX / f"{voc}.safetensors", mode,
                                      vae_config=vae_cfg, vocoder_config=voc_cfg)


@pytest.mark.parametrize("mode", list(MODES))
def test_autoencoder_parity_with_official(mode: str) -> None:
    rows = parity_rows(FIX / f"autoencoder_{mode}_tiny.json")
    assert {r["output"] for r in rows} == OUTPUTS
    for r in rows:
        assert r["ok"], r
        if r["output"] != "decoded_mel":
            assert r["max_abs_error"] <= 1e-4, r


@pytest.mark.parametrize("mode", list(MODES))
def test_pipeline_interface_on_the_fixture(mode: str) -> None:
    """encode = the posterior MEAN in the network layout [B, N, E], un-normalised; decode = vocoded wave."""
    codec = _tiny(mode)
    io = load_file(str(FIX / f"autoencoder_{mode}_tiny_io.safetensors"))
    z = codec.encode(io["wave"])
    e = codec.latent_dim
    assert z.shape == (2, io["wave"].shape[1] // codec.latent_hop, e)
    assert max_err(z, io["posterior_mean"].transpose(1, 2)) <= 1e-4
    assert torch.equal(codec.encode(io["wave"]), z)  # deterministic
    mean, std = codec.encode_posterior(io["wave"])
    assert torch.equal(mean, z) and max_err(std, io["posterior_std"].transpose(1, 2)) <= 1e-4
    wave = codec.decode(io["z"])
    assert wave.dim() == 2 and max_err(wave, io["wav"][:, 0]) <= 1e-4
    # One wave in [N] form, of a length that is not a whole number of latents: padded, not cut.
    cut = io["wave"][0, : codec.latent_hop * 3 + 5]
    one = codec.encode(cut)
    assert one.shape == (1, 4, e)
    padded = torch.cat([cut, torch.zeros(codec.latent_hop - 5)])[None]
    assert torch.equal(one, codec.encode(padded))


@pytest.mark.parametrize("mode,sr,latents_8s", [("16k", 16000, 250), ("44k", 44100, 345)])
def test_real_size_rates_and_lengths(mode: str, sr: int, latents_8s: int) -> None:
    with torch.device("meta"):
        codec = MMAudioCodec(mode)
    assert codec.sample_rate == sr and codec.latent_dim == {"16k": 20, "44k": 40}[mode]
    assert codec.vocoder.hop_length == codec.mel_converter.hop_size  # official chains: same hop
    assert codec.num_latent_frames(8.0) == latents_8s
    for row in json.loads((FIX / "sequence_lengths.json").read_text())[mode]:
        n = codec.num_latent_frames(row["duration"])
        assert n == row["latent_seq_len"], row
        assert codec.num_samples(n) == row["num_audio_frames"], row


@pytest.mark.parametrize("mode,vae,voc", [("16k", "vae_16k", "bigvgan_16k"), ("44k", "vae_44k", "bigvgan_v2_44k")])
def test_real_size_state_dict_is_the_official_components(mode: str, vae: str, voc: str) -> None:
    with torch.device("meta"):
        codec = MMAudioCodec(mode)
    expected = {f"mel_converter.{k}": v for k, v in manifest_entry(f"mel_converter_{mode}")["keys"].items()}
    expected |= {f"vae.{k}": v for k, v in manifest_entry(vae)["keys"].items()}
    folded = fold_weight_norm(meta_state_dict(manifest_entry(voc)["keys_legacy_weight_norm"]))
    expected |= {f"vocoder.{k}": list(v.shape) for k, v in folded.items()}
    assert shapes(codec) == expected


def test_save_and_load_pretrained(tmp_path: Path) -> None:
    codec = _tiny("44k")
    codec.save_pretrained(tmp_path / "codec")
    again = MMAudioCodec.from_pretrained(tmp_path / "codec").eval()
    assert again.config.mode == "44k" and again.config.vae_config["hidden_dim"] == 8
    io = load_file(str(FIX / "autoencoder_44k_tiny_io.safetensors"))
    assert torch.equal(again.encode(io["wave"]), codec.encode(io["wave"]))
    assert torch.equal(again.decode(io["z"]), codec.decode(io["z"]))


def test_mismatched_components_are_refused() -> None:
    with pytest.raises(ValueError, match="mel bands disagree"):
        MMAudioCodec("16k", vae_config={"data_dim": 128, "embed_dim": 40, "hidden_dim": 8},
                     vocoder_config={"num_mels": 80, "upsample_rates": [4, 2, 2], "upsample_kernel_sizes": [8, 4, 4],
                                     "upsample_initial_channel": 32})
