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


def test_audio_parity_reads_shapes_from_the_json(tmp_path: Path) -> None:
    """A directory of fixtures at other sizes (made here, in the official layouts) is recomputed
    from its JSONs alone: nothing about the fixture shapes is hard-coded."""
    import shutil

    from safetensors.torch import save_file

    from models.mmaudio_family.bigvgan import BigVGAN
    from models.mmaudio_family.parity_audio import audio_parity
    from models.mmaudio_family.vae import MelVAE

    g = torch.Generator().manual_seed(5)
    # A vocoder with other rates and widths, saved under the legacy weight-norm names.
    h = {"resblock": "1", "num_mels": 80, "upsample_rates": [2, 2], "upsample_kernel_sizes": [4, 4],
         "upsample_initial_channel": 16, "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1, 3, 5]],
         "activation": "snakebeta", "snake_logscale": True}
    voc = BigVGAN(**config_from_official(h, v2=False))
    raw = {}
    for k, v in voc.state_dict().items():
        if k.endswith(".weight"):
            w = torch.randn(v.shape, generator=g)
            raw[k[:-7] + ".weight_g"] = 0.5 + torch.rand((v.shape[0], 1, 1), generator=g)
            raw[k[:-7] + ".weight_v"] = w
        elif k.endswith(".filter"):
            raw[k] = v
        else:
            raw[k] = 0.1 * torch.randn(v.shape, generator=g)
    mel = torch.randn(1, 80, 5, generator=g)
    wav = BigVGAN.from_official(raw, config_from_official(h, v2=False))(mel).detach()
    save_file(raw, str(tmp_path / "voc_other.safetensors"))
    save_file({"mel": mel, "wav": wav}, str(tmp_path / "voc_other_io.safetensors"))
    (tmp_path / "voc_other.json").write_text(json.dumps(
        {"component": "voc_other", "source": {"file": "mmaudio/ext/bigvgan/models.py"}, "constructor": h}))
    # A VAE at hidden_dim 4 (raw, unfolded weights as in v1-16.pth).
    cfg = {"data_dim": 80, "embed_dim": 20, "hidden_dim": 4}
    with torch.no_grad():
        vae_raw = {k: torch.randn(v.shape, generator=g) for k, v in MelVAE(**cfg).state_dict().items()}
        vae_raw["data_std"] = vae_raw["data_std"].abs() + 0.5
        vae = MelVAE.from_official(vae_raw, cfg)
        x = torch.randn(1, 80, 12, generator=g)
        mean, std = vae.encode(x)
        io = {"mel": x, "posterior_mean": mean, "posterior_std": std, "decoded_from_mean": vae.decode(mean)}
    save_file(vae_raw, str(tmp_path / "vae_other.safetensors"))
    save_file(io, str(tmp_path / "vae_other_io.safetensors"))
    (tmp_path / "vae_other.json").write_text(json.dumps(
        {"component": "vae_other", "source": {"file": "mmaudio/ext/autoencoder/vae.py"}, "constructor": cfg}))
    # And one official fixture copied under the same roof; unrelated JSONs are skipped.
    for suffix in (".json", ".safetensors", "_io.safetensors"):
        shutil.copy(FIX / f"mel_converter_44k{suffix}", tmp_path / f"mel_converter_44k{suffix}")
    shutil.copy(FIX / "sequence_lengths.json", tmp_path / "sequence_lengths.json")

    result = audio_parity(tmp_path)
    assert set(result) == {"voc_other", "vae_other", "mel_converter_44k"}
    assert result["voc_other"] == {"wav": 0.0}
    assert set(result["vae_other"]) == {"posterior_mean", "posterior_std", "decoded_from_mean"}
    assert max(result["vae_other"].values()) == 0.0 and result["mel_converter_44k"]["mel"] <= 1e-4
