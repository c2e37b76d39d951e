"""What a library's files are: a video candidate (by name or by its first bytes) or a prompts
sidecar. The local walk (tasks/ingest.py), the remote walk (tasks/library_fs.py), the upload
scan (tasks/uploads.py) and the prompts stage (tasks/shot_prompts.py) all judge files by these rules.

A file is a video candidate when its extension says video (.mp4, .mov, .mkv, …) or its first
16 bytes carry a container signature: ISO-BMFF ``ftyp`` at offset 4, Matroska/WebM EBML, RIFF
(AVI), FLV, Ogg, MPEG program/elementary stream start codes, ASF; or an MPEG-TS sync byte
(0x47) on a file whose size is a whole number of 188-byte packets. Candidates are then probed
for real. ``<video>.prompts.txt`` (or ``<stem>.prompts.txt``) next to a video is its sidecar of
user prompts, never a candidate.
"""

from __future__ import annotations

import os
from pathlib import Path

VIDEO_EXTENSIONS = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mts", ".m2ts", ".ts",
                    ".mpg", ".mpeg", ".flv", ".ogv", ".wmv", ".3gp", ".mxf", ".dv"}
SIDECAR_SUFFIX = ".prompts.txt"
_SIGNATURES = (
    (4, b"ftyp"), (0, b"\x1a\x45\xdf\xa3"), (0, b"RIFF"), (0, b"FLV"), (0, b"OggS"),
    (0, b"\x00\x00\x01\xba"), (0, b"\x00\x00\x01\xb3"), (0, b"\x30\x26\xb2\x75"),
)


def is_sidecar(name: str) -> bool:
    """A prompts sidecar (``*.prompts.txt``): read with its video, never a candidate itself."""
    return name.endswith(SIDECAR_SUFFIX)


def is_video_candidate(name: str, head: bytes, size: int) -> bool:
    """A video by its name, or by its first 16 bytes (container signature)."""
    if os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS:
        return True
    if len(head) >= 1 and head[0] == 0x47 and size % 188 == 0:
        return True
    return any(head[off:off + len(sig)] == sig for off, sig in _SIGNATURES)


def looks_like_video(path: Path) -> bool:
    """``is_video_candidate`` on a local file (False when it cannot be read)."""
    if path.suffix.lower() in VIDEO_EXTENSIONS:
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
        return is_video_candidate(path.name, head, path.stat().st_size)
    except OSError:
        return False
