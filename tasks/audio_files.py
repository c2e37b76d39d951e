"""Audio arrays and the files they go to: the stems, the takes and the mix all pass through here.

``write_flac_atomic`` writes FLAC (24-bit PCM) under a hidden temporary name in the target's
directory, then renames it over the target (``os.replace``: atomic within a file system), so a
reader never sees half a file and a crash leaves only the hidden temp behind; it returns the
written file's sha256, which the records keep. ``fit_length`` crops a mono signal to n samples
or zero-pads its end (the window's original audio, a recorded take re-read as a negative).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

from tasks.ingest import sha256_file


def write_flac_atomic(path: Path, wave: np.ndarray, sample_rate: int) -> str:
    """Write ``wave`` (float32 samples) as FLAC through a temp name; return the sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    sf.write(tmp, np.asarray(wave, dtype=np.float32), sample_rate, format="FLAC", subtype="PCM_24")
    os.replace(tmp, path)
    return sha256_file(path)


def fit_length(wave: np.ndarray, n: int) -> np.ndarray:
    """``wave`` cropped or zero-padded at the end to ``n`` samples, as float32."""
    out = np.zeros(n, dtype=np.float32)
    m = min(n, len(wave))
    out[:m] = wave[:m]
    return out
