"""A bundle's identity (models/generation/bundle.py: per-file sha256, weights and content
digests), hashed once per process while its files are unchanged.

Hashing is the cost: a real MMAudio bundle is several GB (sha256 ~1 GB/s on one core), and
both the stage cache keys (tasks/stage_cache.py) and the provenance of every track
(tasks/generate.py) need it. Keyed on the stat signature of every file (relative path, size,
mtime_ns, inode), so a bundle re-converted in place is hashed again and an unchanged one never
is: one hash per process, then a directory walk of stat calls (~50 µs per file).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from models.generation.bundle import bundle_identity

Signature = tuple[tuple[str, int, int, int], ...]


def _signature(root: Path) -> Signature:
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file():
            st = p.stat()
            out.append((p.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns, st.st_ino))
    return tuple(out)


@functools.lru_cache(maxsize=8)
def _identity(root: str, signature: Signature) -> dict[str, Any]:
    return bundle_identity(root)


def cached_bundle_identity(bundle_dir: str | Path) -> dict[str, Any]:
    """``bundle_identity`` of ``bundle_dir`` (bundle_id, content_sha256, weights_sha256,
    weights and files as ``{relpath: sha256}``), re-hashed only when a file changed.
    The returned dict is shared: do not mutate it."""
    root = Path(bundle_dir).expanduser().resolve()
    return _identity(str(root), _signature(root))
