"""MelCodec: shapes at MMAudio's latent rate, normalisation, deterministic invertibility."""

from __future__ import annotations

import math

import pytest
import torch

from models.demo_family.codec import MelCodec
from models.training.bundle_recipes import CODEC_ANALYSIS, CODEC_LOG_FLOOR


def _test_signal(seconds: float = 4.0, seed: int = 0) -> torch.Tensor:
    """A gated harmonic tone plus coloured noise: both tonal and noisy content."""
    sr = 16000
    t = torch.arange(int(seconds * sr)) / sr
    gen = torch.Generator().manual_seed(seed)
    tone = sum(0.2 / k * torch.sin(2 * math.pi * 330 * k * t) for k in range(1, 5))
    gate = (torch.sin(2 * math.pi * 1.5 * t) > 0).float()
    noise = torch.cumsum(torch.randn(t.shape, generator=gen), 0)
    noise = 0.02 * (noise - noise.mean()) / noise.std()
    return (tone * gate + noise)[None]


def test_rates_and_lengths() -> None:
    codec = MelCodec()
    assert codec.sample_rate == 16000
    assert codec.latent_rate == 31.25
    assert codec.latent_dim == 64
    assert codec.num_latent_frames(8.0) == 250
    assert codec.num_latent_frames(4.0) == 125
    assert codec.num_latent_frames(1.0) == 32  # ceil(31.25)
    z = codec.encode(torch.zeros(2, 128000))
    assert z.shape == (2, 250, 64)
    assert codec.decode(z).shape == (2, 128000)


def test_normalisation_makes_latents_standard() -> None:
    codec = MelCodec()
    waves = [_test_signal(seed=s) for s in range(3)]
    codec.fit_normalization(waves)
    z = torch.cat([codec.encode(w) for w in waves], dim=1)
    assert abs(z.mean().item()) < 1e-3
    assert abs(z.std().item() - 1.0) < 0.05
    assert len(codec.config.latent_mean) == 64


def test_decode_is_deterministic_and_consistent() -> None:
    # No static threshold here: this checks the inversion itself, on in-distribution latents.
    codec = MelCodec(latent_max=None)
    wave = _test_signal()
    codec.fit_normalization([wave])
    z = codec.encode(wave)
    y1, y2 = codec.decode(z), codec.decode(z)
    assert torch.equal(y1, y2)
    assert torch.isfinite(y1).all()
    # Re-encoding the reconstruction lands near the original latent: Griffin-Lim found a
    # waveform whose mel spectrogram matches (a few dB at most on average).
    err = (codec.encode(y1) - z).abs().mean().item() * codec.sigma.mean().item()  # in log units
    assert err < 0.35, err
    # Phase reconstruction converges: more iterations do not make the match worse.
    few = (codec.encode(codec.decode(z, num_iters=2)) - z).abs().mean().item()
    assert (codec.encode(y1) - z).abs().mean().item() < few


def test_silence_stays_silent_and_save_load(tmp_path) -> None:
    codec = MelCodec()
    codec.fit_normalization([_test_signal()])
    silent = codec.decode(codec.encode(torch.zeros(1, 32000)))
    assert silent.abs().max().item() < 1e-3
    codec.save_pretrained(tmp_path)
    loaded = MelCodec.from_pretrained(tmp_path)
    assert torch.allclose(loaded.mu, codec.mu) and torch.allclose(loaded.sigma, codec.sigma)
    z = codec.encode(_test_signal(seconds=1.0))
    assert torch.equal(loaded.decode(z), codec.decode(z))


def test_static_threshold_bounds_extrapolated_latents() -> None:
    codec = MelCodec()
    codec.fit_normalization([_test_signal()])
    z = codec.encode(_test_signal())
    # The clip follows the fitted data: just above the loudest normalised value seen.
    assert abs(codec.config.latent_max - (z.max().item() + 0.05)) < 2e-3
    loud = codec.decode(z + 6.0)  # what an over-guided sample can look like
    ceiling = codec.decode(torch.full_like(z, codec.config.latent_max))
    assert torch.isfinite(loud).all()
    assert torch.equal(loud, ceiling)
    unclipped = MelCodec(latent_max=None)
    unclipped.mu.copy_(codec.mu)
    unclipped.sigma.copy_(codec.sigma)
    assert unclipped.decode(z + 6.0).abs().max() > 10 * loud.abs().max()


def test_stacked_frames_keep_the_latent_rate_and_invert_like_the_fine_codec() -> None:
    """k = 2 frames per token at hop 256: the same 31.25 tokens/s, twice the dims, and exactly
    the fine codec's analysis and synthesis (the stacking is a reshape, nothing else)."""
    fine = MelCodec(n_fft=512, hop_length=256)
    stacked = MelCodec(n_fft=512, hop_length=256, frames_per_latent=2)
    waves = [_test_signal(seed=s) for s in range(2)]
    fine.fit_normalization(waves)
    stacked.fit_normalization(waves)
    assert stacked.latent_rate == 31.25 and stacked.latent_dim == 128
    assert stacked.num_latent_frames(8.0) == 250 and stacked.num_samples(250) == 128000
    wave = _test_signal()
    z_fine, z = fine.encode(wave), stacked.encode(wave)
    assert z.shape == (1, 125, 128)
    assert torch.equal(z, z_fine.reshape(1, 125, 128))
    assert torch.equal(stacked.decode(z), fine.decode(z_fine))
    # A length that is not a whole number of tokens pads to whole tokens (never drops audio).
    odd = stacked.encode(wave[:, :16000 + 300])
    assert odd.shape == (1, math.ceil((16000 + 300) / 512), 128)
    assert stacked.decode(odd).shape[-1] == odd.shape[1] * 512


def _bursts(seconds: float = 4.0, seed: int = 0) -> tuple[torch.Tensor, list[int]]:
    """Footstep-like noise bursts (12 ms decay) every 0.37 s, silence between: pure onsets."""
    sr = 16000
    gen = torch.Generator().manual_seed(seed)
    wave, onsets = torch.zeros(int(seconds * sr)), []
    length = int(0.06 * sr)
    decay = torch.exp(-torch.arange(length) / (0.012 * sr))
    for k in range(int((seconds - 0.4) / 0.37) + 1):
        i = int((0.2 + 0.37 * k) * sr)
        wave[i:i + length] += 0.5 * torch.randn(length, generator=gen) * decay
        onsets.append(i)
    return wave[None], onsets


def test_decode_keeps_onsets_free_of_pre_echo() -> None:
    """The shipped analysis's decode puts ≥ 28 dB between an onset and the 10–50 ms before it.
    Griffin-Lim on a 4× oversampled hop (interpolated magnitudes) gave 22 dB there: the
    smear that made every decoded footstep a dog to the judge."""
    codec = MelCodec(log_floor=CODEC_LOG_FLOOR, **CODEC_ANALYSIS)
    wave, onsets = _bursts()
    codec.fit_normalization([wave])
    out = codec.decode(codec.encode(wave))[0]
    ratios = []
    for i in onsets:
        before = out[i - 800: i - 160].pow(2).mean()
        after = out[i: i + 640].pow(2).mean()
        ratios.append(10 * math.log10(after / (before + 1e-12)))
    assert sum(ratios) / len(ratios) >= 28.0, ratios


def test_decode_without_overlap_is_refused_up_front() -> None:
    with pytest.raises(ValueError, match="50 % overlap"):
        MelCodec(n_fft=512, hop_length=512, griffin_lim_oversample=1)
    assert MelCodec(n_fft=512, hop_length=512, griffin_lim_oversample=2).decode(torch.zeros(1, 4, 64)).shape == (1, 2048)
