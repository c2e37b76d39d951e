"""Where the ffmpeg binary comes from, and how it is run.

The binary is the one shipped in the ``imageio-ffmpeg`` wheel, resolved lazily (importing
this module never touches the file system) and overridable with ``STEPFOLEY_FFMPEG``.
Commands are always argument lists handed to ``subprocess`` without a shell, so hostile
file names can never be interpreted.
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path
from typing import Sequence


class FFmpegError(RuntimeError):
    """ffmpeg exited non-zero; ``message`` is the last meaningful line of its stderr."""

    def __init__(self, message: str, returncode: int, stderr: str = "") -> None:
        super().__init__(message)
        self.returncode = returncode
        self.stderr = stderr


@functools.lru_cache(maxsize=1)
def ffmpeg_path() -> str:
    """Absolute path of the ffmpeg executable (``STEPFOLEY_FFMPEG`` wins)."""
    override = os.environ.get("STEPFOLEY_FFMPEG")
    if override:
        if not Path(override).is_file():
            raise FileNotFoundError(f"STEPFOLEY_FFMPEG={override} is not a file")
        return override
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _last_error_line(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    return lines[-1] if lines else "ffmpeg failed without a message"


def run_ffmpeg(args: Sequence[str], *, input_bytes: bytes | None = None,
               timeout: float | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run ``ffmpeg -hide_banner -nostdin <args>``; raise :class:`FFmpegError` on failure."""
    cmd = [ffmpeg_path(), "-hide_banner", "-nostdin", "-loglevel", "error", *map(str, args)]
    proc = subprocess.run(cmd, input=input_bytes, capture_output=True, timeout=timeout,
                          check=False)
    if proc.returncode != 0:
        stderr = proc.stderr.decode("utf-8", "replace")
        raise FFmpegError(_last_error_line(stderr), proc.returncode, stderr)
    return proc
