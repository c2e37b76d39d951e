"""A bundle is hashed once per process while its files are unchanged, and again when one changes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from models.generation.bundle import bundle_identity
from tasks.bundle_identity import cached_bundle_identity

BUNDLE = Path(__file__).resolve().parents[2] / "models" / "weights" / "foleyworld-tiny"


def _same_size_rewrite(path: Path) -> None:
    """New bytes, same size, same mtime and inode: what a stat signature cannot tell apart."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    with open(path, "r+b") as fh:  # in place: the inode stays
        fh.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_unchanged_files_are_not_hashed_again_and_changed_ones_are(tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    shutil.copytree(BUNDLE, bundle)
    first = cached_bundle_identity(bundle)
    assert first == bundle_identity(bundle)
    weights = sorted(bundle.rglob("*.safetensors"))[0]
    _same_size_rewrite(weights)
    # Same stat signature: the cached identity is reused (the bytes were not read again) ...
    assert cached_bundle_identity(bundle) is first
    # ... while a real hash sees the change,
    assert bundle_identity(bundle)["weights_sha256"] != first["weights_sha256"]
    st = weights.stat()
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    # and once the mtime moves the cached one re-hashes and agrees with it.
    again = cached_bundle_identity(bundle)
    assert again == bundle_identity(bundle) and again["weights_sha256"] != first["weights_sha256"]
    rel = weights.relative_to(bundle).as_posix()
    assert again["files"][rel] != first["files"][rel]
    assert {k: v for k, v in again["files"].items() if k != rel} == {k: v for k, v in first["files"].items() if k != rel}
