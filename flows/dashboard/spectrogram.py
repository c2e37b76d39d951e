"""PNG spectrogram of a stem, rendered once and cached in the data dir (atomic write)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import soundfile as sf


def spectrogram_png(stem: Path, cache_dir: Path, key: str) -> Path:
    """Return the cached PNG for ``key`` (the stem's sha256), rendering it on first use.

    Keyed by content hash so a regenerated stem never shows a stale picture; written to a temp
    file and renamed so concurrent requests never read a half-written PNG.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    out = cache_dir / f"{key}.png"
    if out.exists():
        return out
    import matplotlib

    matplotlib.use("Agg")  # headless server: no display
    import matplotlib.pyplot as plt

    audio, sr = sf.read(stem, dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    fig, ax = plt.subplots(figsize=(6, 1.6), dpi=100)
    ax.specgram(mono + 1e-9, NFFT=512, Fs=sr, noverlap=384, cmap="magma")
    ax.set_xlabel("s"), ax.set_ylabel("Hz")
    fig.tight_layout()
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=cache_dir)
    try:
        with os.fdopen(fd, "wb") as fh:
            fig.savefig(fh, format="png")
        os.replace(tmp, out)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out
