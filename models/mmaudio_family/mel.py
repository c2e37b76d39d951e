"""MMAudio's mel converter: waveform → log-mel spectrogram, the input of the mel VAE.

For a mono wave ``w`` [B, N] (N a multiple of the hop H):

    w'       = reflect_pad(clamp(w, −1, 1), (n_fft − H) / 2 on both sides)
    X[f, τ]  = Σ_n w'[τH + n] · hann[n] · e^{−2πi f n / n_fft}       (one-sided, no centring)
    S[f, τ]  = sqrt(Re² + Im² + 1e-9)
    M[m, τ]  = Σ_f B[m, f] · S[f, τ]
    out      = log_b(max(M, 1e-5))        (b = 10 for 16 kHz, e for 44.1 kHz)

so τ = 0 … N/H − 1 (the padding makes frame τ centred on sample τH + H/2). The Hann window is
periodic. ``B`` is the Slaney mel filterbank (what ``librosa.filters.mel`` builds by default):
the Slaney mel scale is linear below 1 kHz and logarithmic above,

    mel(f) = f / (200/3)                                   f < 1000 Hz
           = 15 + ln(f / 1000) / (ln 6.4 / 27)             f ≥ 1000 Hz

n_mels + 2 points equally spaced in mel between fmin and fmax give the triangle corners
(h₀ … h_{M+1}, back in Hz); band m rises on [h_m, h_{m+1}], falls on [h_{m+1}, h_{m+2}] over the
FFT bin frequencies k · sr / n_fft, and is scaled by 2 / (h_{m+2} − h_m) (Slaney's "area"
normalisation, equal energy per band). Computed in float64; the float32 rounding of the triangles
before that scaling is librosa's, kept so the basis equals the official buffer bit for bit (both
modes, checked against the fixtures).

Modes: ``16k`` n_fft = win = 1024, hop 256, 80 mels, fmax 8000, log10; ``44k`` n_fft = win = 2048,
hop 512, 128 mels, fmax 22050, natural log. Both buffers (``mel_basis``, ``hann_window``) are
persistent so the official converter's state dict loads strictly, but they are derived: no
official checkpoint carries them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from models.mmaudio_family.state_dict import check_state_dict, read_state_dict

MODES: dict[str, dict[str, Any]] = {
    "16k": dict(sampling_rate=16000, n_fft=1024, num_mels=80, hop_size=256, win_size=1024, fmin=0.0,
                fmax=8000.0, log="log10"),
    "44k": dict(sampling_rate=44100, n_fft=2048, num_mels=128, hop_size=512, win_size=2048, fmin=0.0,
                fmax=22050.0, log="ln"),
}

_F_SP = 200.0 / 3.0  # Hz per mel in the linear part of the Slaney scale
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = math.log(6.4) / 27.0


def slaney_hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    log_part = _MIN_LOG_MEL + torch.log(torch.clamp(hz, min=_MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return torch.where(hz >= _MIN_LOG_HZ, log_part, hz / _F_SP)


def slaney_mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    log_part = _MIN_LOG_HZ * torch.exp(_LOGSTEP * (torch.clamp(mel, min=_MIN_LOG_MEL) - _MIN_LOG_MEL))
    return torch.where(mel >= _MIN_LOG_MEL, log_part, mel * _F_SP)


def slaney_mel_basis(sr: float, n_fft: int, n_mels: int, fmin: float, fmax: float) -> torch.Tensor:
    """The Slaney-scale, area-normalised triangular filterbank ``[n_mels, n_fft // 2 + 1]`` (float32)."""
    f64 = torch.float64
    # Bin k sits at k / (n_fft · (1 / sr)) Hz, written as the FFT's frequency spacing does.
    freqs = torch.arange(n_fft // 2 + 1, dtype=f64) * (1.0 / (n_fft * (1.0 / sr)))
    lo, hi = slaney_hz_to_mel(torch.tensor(float(fmin), dtype=f64)), slaney_hz_to_mel(torch.tensor(float(fmax), dtype=f64))
    corners = slaney_mel_to_hz(torch.linspace(0.0, 1.0, n_mels + 2, dtype=f64) * (hi - lo) + lo)
    width = corners[1:] - corners[:-1]
    offset = corners[:, None] - freqs[None, :]  # [n_mels + 2, F]
    rising = -offset[:-2] / width[:-1, None]
    falling = offset[2:] / width[1:, None]
    tri = torch.clamp(torch.minimum(rising, falling), min=0.0).to(torch.float32)
    scale = 2.0 / (corners[2:] - corners[:-2])
    return (tri.to(f64) * scale[:, None]).to(torch.float32)


class MelConverter(ModelMixin, ConfigMixin):
    """Waveform ``[B, N]`` → log-mel ``[B, num_mels, N // hop_size]`` (see module doc)."""

    config_name = "config.json"

    @register_to_config
    def __init__(self, sampling_rate: int = 16000, n_fft: int = 1024, num_mels: int = 80, hop_size: int = 256,
                 win_size: int = 1024, fmin: float = 0.0, fmax: float = 8000.0, log: str = "log10",
                 log_floor: float = 1e-5) -> None:
        super().__init__()
        if log not in ("log10", "ln"):
            raise ValueError(f"log must be 'log10' or 'ln', got {log!r}")
        if (n_fft - hop_size) % 2:
            raise ValueError("n_fft - hop_size must be even (the wave is padded by half of it on each side)")
        self.register_buffer("mel_basis", slaney_mel_basis(sampling_rate, n_fft, num_mels, fmin, fmax))
        self.register_buffer("hann_window", torch.hann_window(win_size))

    @classmethod
    def from_mode(cls, mode: str) -> "MelConverter":
        if mode not in MODES:
            raise KeyError(f"unknown mel converter mode {mode!r}; known: {sorted(MODES)}")
        return cls(**MODES[mode])

    @classmethod
    def from_official(cls, state_dict: str | Path | Mapping[str, torch.Tensor],
                      config: str | Mapping[str, Any]) -> "MelConverter":
        """Build ``config`` (a mode name or constructor dict) and load the official buffers strictly."""
        module = cls.from_mode(config) if isinstance(config, str) else cls(**dict(config))
        sd = read_state_dict(state_dict)
        check_state_dict(f"MelConverter({module.config.num_mels} mels)",
                         {k: v.shape for k, v in module.state_dict().items()}, sd)
        module.load_state_dict(sd, strict=True)
        return module.eval()

    @property
    def hop_size(self) -> int:
        return int(self.config.hop_size)

    @property
    def sample_rate(self) -> int:
        return int(self.config.sampling_rate)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        c = self.config
        if wave.dim() == 1:
            wave = wave[None]
        wave = wave.to(self.mel_basis.dtype).clamp(-1.0, 1.0)
        pad = (c.n_fft - c.hop_size) // 2
        wave = F.pad(wave[:, None], (pad, pad), mode="reflect")[:, 0]
        spec = torch.stft(wave, c.n_fft, hop_length=c.hop_size, win_length=c.win_size, window=self.hann_window,
                          center=False, normalized=False, onesided=True, return_complex=True)
        spec = torch.view_as_real(spec)
        # The 1e-9 keeps the gradient of sqrt finite at silent bins (and is part of the numbers).
        mag = torch.sqrt(spec.pow(2).sum(-1) + 1e-9)
        mel = torch.matmul(self.mel_basis, mag).clamp(min=c.log_floor)
        return torch.log10(mel) if c.log == "log10" else torch.log(mel)
