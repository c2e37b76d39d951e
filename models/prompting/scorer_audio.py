"""The scorer's audio input: a 16 kHz log-mel.

    x   = mono(wave) resampled to 16 kHz (zero-padded to one FFT frame)
    S   = |STFT(x)|, Hann window n_fft, hop, centred
    mel = log(F · S + 1e-5),  F: n_mels HTK bands over 20–8000 Hz
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from models.demo_family.codec import mel_filterbank
from models.prompting.audio_taggers import to_mono_16k

def log_mel_16k(wave: np.ndarray, sample_rate: int, n_fft: int = 1024, hop: int = 512, n_mels: int = 64) -> torch.Tensor:
    """``[n_mels, frames]`` log-mel of a wave resampled to 16 kHz (20–8000 Hz HTK bands,
    log(x + 1e-5)); the scorer's audio input."""
    x = torch.from_numpy(to_mono_16k(wave, sample_rate))
    if x.numel() < n_fft:
        x = F.pad(x, (0, n_fft - x.numel()))
    spec = torch.stft(x, n_fft, hop, window=torch.hann_window(n_fft), center=True, return_complex=True).abs()
    fb = mel_filterbank(16000, n_fft, n_mels, 20.0, 8000.0).to(spec.dtype)
    return torch.log(fb @ spec + 1e-5)
