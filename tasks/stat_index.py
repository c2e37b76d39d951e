"""The stat index: which library files are unchanged since they were hashed, without reading them.

A nightly backfill walks an archive that is almost all done. Reading every file again (sha256)
and probing it costs the archive's size in I/O every night; what changed is found by ``stat``
alone, as make, rsync and git do. Each path's ``asset_path`` row keeps the file's identity as it
was when its content was hashed:

    key(f) = (size, mtime_ns, inode, device)

and a later walk trusts the recorded sha256 (so the asset, and whether it is done) exactly when
the file's key is equal. Any change of size or modification time (a write, ``touch``), of inode
(a file replaced by rename, as editors and ``rsync`` do), or of device (another file system)
means "read it again". ctime is left out on purpose: it changes on ``chmod``/``chown`` and on
every backup tool's metadata restore, none of which changes content, and it cannot be set back.

Racy entries. A file system stamps mtimes with a coarse clock (a kernel tick, 1 or 2 s on
FAT/SMB/some NFS servers), so a write that lands in the same tick as the write before it may
leave the mtime unchanged. A key is only recorded when its mtime is older than the moment of
the stat by more than ``RACY_NS`` (2 s, the coarsest common granularity): any write after the
stat then carries a later mtime. A file modified within the last 2 s of being walked is simply
hashed again next time (git's "racy clean" rule, with a time margin instead of a re-read).

Inode and device numbers are unsigned 64-bit on some file systems (XFS, NFS, overlayfs devices);
the database stores signed 64-bit integers, so they are folded into that range (two's
complement), which keeps equality.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Mapping

RACY_NS = 2_000_000_000
_U64 = 1 << 64
_I64_MAX = (1 << 63) - 1


def signed64(value: int) -> int:
    """An unsigned 64-bit number as the signed one with the same bits (equality preserved)."""
    value %= _U64
    return value - _U64 if value > _I64_MAX else value


@dataclass(frozen=True)
class FileStat:
    """A file's identity for the index, and whether it may be recorded (not racy)."""

    size: int
    mtime_ns: int
    inode: int
    device: int
    racy: bool = False

    @classmethod
    def of(cls, st: os.stat_result, taken_ns: int | None = None) -> "FileStat":
        """From an ``os.stat`` taken at ``taken_ns`` (wall clock ns; default: now)."""
        now = time.time_ns() if taken_ns is None else taken_ns
        return cls(size=int(st.st_size), mtime_ns=int(st.st_mtime_ns), inode=signed64(st.st_ino),
                   device=signed64(st.st_dev), racy=st.st_mtime_ns > now - RACY_NS)

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> "FileStat | None":
        """The file's stat now (following symlinks), or None when it cannot be read."""
        taken = time.time_ns()
        try:
            return cls.of(os.stat(path), taken)
        except OSError:
            return None

    def columns(self) -> dict[str, int | None]:
        """The ``asset_path`` stat columns to record: NULLs for a racy stat (never trusted)."""
        if self.racy:
            return {"size_bytes": None, "mtime_ns": None, "inode": None, "device": None}
        return {"size_bytes": self.size, "mtime_ns": self.mtime_ns, "inode": self.inode,
                "device": self.device}


def unchanged(recorded: Mapping[str, Any] | None, current: FileStat | None) -> bool:
    """True when ``recorded`` (an index entry: the stat columns) is this file's key as it is now."""
    if recorded is None or current is None or recorded.get("mtime_ns") is None:
        return False
    return (recorded.get("size_bytes") == current.size and recorded["mtime_ns"] == current.mtime_ns
            and recorded.get("inode") == current.inode and recorded.get("device") == current.device)
