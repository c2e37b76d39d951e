"""The original soundtrack of a window, at the model's rate, mono — or None when silent.

Decoded by ffmpeg (``-ss``/``-t`` on the input, all channels averaged to mono with ``-ac 1``,
resampled by swresample to the codec rate) to float32. "No original sound" is either no audio
stream at all or a window whose RMS level is below −60 dBFS (20·log10(rms) < −60); otherwise
the audio becomes the window's first negative, so generation keeps out of what the footage
already has.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from tasks.audio_files import fit_length
from tasks.ffmpeg_bin import FFmpegError, run_ffmpeg
from tasks.media_paths import from_uri
from tasks.probe import probe

SILENCE_DBFS = -60.0


@functools.lru_cache(maxsize=256)
def has_audio_stream(path: str) -> bool:
    return probe(Path(path)).has_audio


def decode_audio(path: str | Path, start_s: float, end_s: float | None, sample_rate: int,
                 channels: int = 1) -> np.ndarray:
    """float32 samples (mono: [N]; else [N, C]) of [start_s, end_s) of the first audio stream."""
    p = from_uri(str(path))
    args = ["-ss", f"{float(start_s):.6f}"]
    if end_s is not None:
        args += ["-t", f"{float(end_s) - float(start_s):.6f}"]
    args += ["-i", p, "-map", "0:a:0", "-vn", "-ac", str(channels), "-ar", str(sample_rate),
             "-f", "f32le", "pipe:1"]
    out = run_ffmpeg(args).stdout
    x = np.frombuffer(out, np.float32).copy()
    return x if channels == 1 else x.reshape(-1, channels)


def level_dbfs(x: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0
    return 20.0 * np.log10(rms) if rms > 0 else -np.inf


def original_audio(path: str | Path, start_s: float, end_s: float, sample_rate: int) -> np.ndarray | None:
    """The window's original audio, or None (no stream, or quieter than −60 dBFS)."""
    p = from_uri(str(path))
    if not has_audio_stream(p):
        return None
    try:
        x = decode_audio(p, start_s, end_s, sample_rate)
    except FFmpegError:
        return None
    n = int(round((end_s - start_s) * sample_rate))
    if x.size == 0 or level_dbfs(x) < SILENCE_DBFS:
        return None
    return fit_length(x, n)
