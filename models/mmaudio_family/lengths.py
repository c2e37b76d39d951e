"""MMAudio's sequence lengths for a window of d seconds (the official ``SequenceConfig`` rules).

With sampling rate sr and mel hop h (16k: 16000 / 256, 44k: 44100 / 512) and the VAE's ×2
temporal down-sampling:

    latent  = ⌈d · sr / h / 2⌉                    (16k: 31.25/s, 44k: 43.07/s; 8 s → 250 / 345)
    audio   = latent · h · 2 samples               (8 s → 128000 / 353280)
    clip    = int(8 · d)                           (CLIP frames at 8 fps)
    sync    = int(((25 d − 16) // 8 + 1) · 16 / 2) (Synchformer: 16-frame segments every 8 frames
                                                    at 25 fps, 8 tokens each; 8 s → 192)

The floating-point expressions are evaluated in the official order, so durations such as 3.3 s
land on the same integers as the official code (``sequence_lengths.json`` pins 1–10 s). A window
shorter than one Synchformer segment (d < 0.64 s) has no sync tokens: the official expression
would go negative there, it is clamped to 0.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

Mode = Literal["16k", "44k"]

# (sampling rate, mel hop = "spectrogram_frame_rate" in the official config)
AUDIO_MODES: dict[str, tuple[int, int]] = {"16k": (16000, 256), "44k": (44100, 512)}

LATENT_DOWNSAMPLE = 2
CLIP_FPS = 8
SYNC_FPS = 25
SYNC_SEGMENT_FRAMES = 16
SYNC_STEP_FRAMES = 8
SYNC_DOWNSAMPLE = 2  # Synchformer's temporal patch: 16 frames → 8 tokens


@dataclass(frozen=True)
class SequenceLengths:
    duration: float
    sampling_rate: int
    latent_seq_len: int
    clip_seq_len: int
    sync_seq_len: int
    num_audio_frames: int

    def to_dict(self) -> dict:
        return asdict(self)


def latent_seq_len(duration: float, sampling_rate: int, hop: int) -> int:
    return int(math.ceil(duration * sampling_rate / hop / LATENT_DOWNSAMPLE))


def clip_seq_len(duration: float) -> int:
    return int(duration * CLIP_FPS)


def num_sync_segments(num_frames: float) -> int:
    """Segments of 16 frames every 8 frames that fit in ``num_frames`` (may be fractional)."""
    return max(0, int((num_frames - SYNC_SEGMENT_FRAMES) // SYNC_STEP_FRAMES + 1))


def sync_seq_len(duration: float) -> int:
    num_frames = duration * SYNC_FPS
    num_segments = (num_frames - SYNC_SEGMENT_FRAMES) // SYNC_STEP_FRAMES + 1
    return max(0, int(num_segments * SYNC_SEGMENT_FRAMES / SYNC_DOWNSAMPLE))


def sequence_lengths(duration: float, mode: Mode | str = "16k") -> SequenceLengths:
    """All four lengths for ``duration`` seconds in ``mode`` ("16k" or "44k")."""
    if mode not in AUDIO_MODES:
        raise KeyError(f"unknown audio mode {mode!r}; known: {sorted(AUDIO_MODES)}")
    sr, hop = AUDIO_MODES[mode]
    latent = latent_seq_len(duration, sr, hop)
    return SequenceLengths(
        duration=float(duration),
        sampling_rate=sr,
        latent_seq_len=latent,
        clip_seq_len=clip_seq_len(duration),
        sync_seq_len=sync_seq_len(duration),
        num_audio_frames=latent * hop * LATENT_DOWNSAMPLE,
    )
