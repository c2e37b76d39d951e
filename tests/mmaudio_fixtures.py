"""The MMAudio parity fixtures carried by the repo (tests/fixtures/mmaudio, from the shared
fixtures made with the official MMAudio code; see its README for provenance and licence).

The two official-layout state dicts are stored as shards of < 5 MB; this module reassembles
them once per test session into a temp dir laid out exactly like the original fixture dir.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path

SRC = Path(__file__).resolve().parent / "fixtures" / "mmaudio"


@functools.lru_cache(maxsize=1)
def mmaudio_fixtures() -> Path:
    from safetensors.torch import load_file, save_file

    out = Path(tempfile.mkdtemp(prefix="mmaudio-fixtures-"))
    for f in SRC.iterdir():
        if ".part" not in f.name:
            shutil.copy(f, out / f.name)
    for v in ("v1", "v2"):
        merged = {}
        for part in sorted(SRC.glob(f"mmaudio_tiny_{v}.part*.safetensors")):
            merged.update(load_file(part))
        save_file(merged, out / f"mmaudio_tiny_{v}.safetensors")
    return out
