"""Frames of a window at exactly the rates a model bundle asks for, streamed from ffmpeg.

ffmpeg seeks to the window (input-side ``-ss``, frame-accurate for decoding), applies the
display rotation, resamples time with the ``fps`` filter (nearest frame at each output
instant t_k = start + k/fps) and space with ``scale`` (Lanczos) — "resize" squashes to
size×size, "center_crop" scales the short side to ``size`` and crops the centre — and writes
rgb24 to a pipe. Only the window's frames are ever in memory, so memory does not grow with
the video's length. When the video ends before the window does, the last frame is repeated
to fill exactly ⌊duration·fps⌋ frames (the count the network's token lengths assume).

Specs whose ``crop`` is ``"mmaudio_clip"`` / ``"mmaudio_sync"`` (MMAudio bundles) take MMAudio's
own frame picking and bicubic resize instead (``tasks/frames_mmaudio.py``), same count and layout.
"""

from __future__ import annotations

import math
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from tasks.errors import MediaError
from tasks.ffmpeg_bin import ffmpeg_path
from tasks.frames_mmaudio import MMAUDIO_CROPS, read_frames_mmaudio
from tasks.media_paths import display, from_uri


def _spec(spec: Any) -> tuple[float, int, str]:
    if isinstance(spec, dict):
        return float(spec["fps"]), int(spec["size"]), str(spec.get("crop", "resize"))
    return float(spec.fps), int(spec.size), str(getattr(spec, "crop", "resize"))


def frame_count(duration: float, fps: float) -> int:
    return max(1, int(math.floor(duration * fps + 1e-6)))


def read_frames(path: str | Path, start_s: float, end_s: float, spec: Any) -> np.ndarray:
    """``uint8 [T, size, size, 3]`` frames of [start_s, end_s) at ``spec.fps``."""
    fps, size, crop = _spec(spec)
    p = from_uri(str(path))
    duration = max(0.0, float(end_s) - float(start_s))
    n = frame_count(duration, fps)
    if crop in MMAUDIO_CROPS:
        return read_frames_mmaudio(p, start_s, end_s, fps, size, crop, n)
    if crop == "center_crop":
        vf = (f"fps={fps},scale={size}:{size}:force_original_aspect_ratio=increase:flags=lanczos,"
              f"crop={size}:{size}")
    else:
        vf = f"fps={fps},scale={size}:{size}:flags=lanczos"
    args = [ffmpeg_path(), "-hide_banner", "-nostdin", "-loglevel", "error",
            "-ss", f"{float(start_s):.6f}", "-t", f"{duration + 1.0 / fps:.6f}", "-i", p,
            "-map", "0:v:0", "-vf", vf, "-frames:v", str(n), "-pix_fmt", "rgb24",
            "-f", "rawvideo", "pipe:1"]
    frame_bytes = size * size * 3
    out = np.empty((n, size, size, 3), np.uint8)
    got = 0
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        while got < n:
            buf = proc.stdout.read(frame_bytes)  # type: ignore[union-attr]
            if len(buf) < frame_bytes:
                break
            out[got] = np.frombuffer(buf, np.uint8).reshape(size, size, 3)
            got += 1
        proc.stdout.close()  # type: ignore[union-attr]
        err = proc.stderr.read().decode("utf-8", "replace").strip()  # type: ignore[union-attr]
        rc = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if got == 0:
        reason = err.splitlines()[-1] if err else f"exit code {rc}"
        raise MediaError(f"{display(p)}: no frames decoded at {start_s:.2f}-{end_s:.2f} s ({reason})",
                         path=p, stage="frames")
    if got < n:
        out[got:] = out[got - 1]
    return out
