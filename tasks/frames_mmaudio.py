"""Frames of a window exactly as MMAudio's ``load_video`` would give them, for specs whose ``crop`` is
``"mmaudio_clip"`` or ``"mmaudio_sync"`` (``models.mmaudio_family.video_features.frame_specs``).

PyAV decodes the window at source resolution with each frame's presentation time t_i (seconds,
relative to the container's start time, as ffmpeg's ``-ss`` counts). The official picking rule
(``models.mmaudio_family.video_preprocess.pick_frames``) runs incrementally over the decoded
frames of [start, start + d]:

    next ← start
    for each frame i with start ≤ t_i ≤ start + d:
        while t_i ≥ next and fewer than n = ⌊d·fps⌋ emitted:  emit i;  next ← next + 1/fps

with the same float accumulation, so the emitted indices are ``pick_frames``'s first n: exactly
``select_frames``'s, except that where ``load_video`` would shorten the duration to what both streams
cover (a 12 fps source gives 49 sync picks in 2 s), the pipeline keeps d and the rule runs on. A frame
that is emitted is converted to rgb24 by PyAV (as the official reader does), rotated by its display
matrix (as ffmpeg's autorotate in ``tasks/frames.read_frames``; the official reader ignores the
rotation, identical for unrotated video) and transformed once by ``clip_frames_u8`` (bicubic
antialiased squash to size × size) or ``sync_frames_u8`` (short side → size, centre crop); a frame
emitted k times is copied k times. Only one source frame (plus the decoder's own queue) is in
memory at a time. When the video ends before n frames, the last one is repeated, as read_frames.

Seeking: the demuxer seeks to the keyframe at or before ``start`` and frames before it are
decoded and dropped, so a window's frames do not depend on where decoding began.
"""

from __future__ import annotations

from typing import Any, Callable

import av
import numpy as np

from tasks.errors import MediaError
from tasks.media_paths import display

MMAUDIO_CROPS = ("mmaudio_clip", "mmaudio_sync")


def _transform(crop: str) -> Callable[..., Any]:
    # torch loads only when an MMAudio bundle asks for frames (warmed before threads: warm_imports)
    from models.mmaudio_family.video_preprocess import clip_frames_u8, sync_frames_u8

    return clip_frames_u8 if crop == "mmaudio_clip" else sync_frames_u8


def _rgb(frame: av.VideoFrame) -> np.ndarray:
    """rgb24 ``[H, W, 3]`` turned upright (display rotation is degrees counter-clockwise)."""
    x = frame.to_ndarray(format="rgb24")
    rot = int(round(float(getattr(frame, "rotation", 0) or 0)))
    if rot % 90 == 0 and rot % 360:
        x = np.rot90(x, (rot // 90) % 4)
    return np.ascontiguousarray(x)


def read_frames_mmaudio(p: str, start_s: float, end_s: float, fps: float, size: int, crop: str,
                        n: int) -> np.ndarray:
    """``uint8 [n, size, size, 3]``: MMAudio's picked frames of [start_s, end_s), transformed."""
    if crop not in MMAUDIO_CROPS:
        raise ValueError(f"not an MMAudio crop: {crop!r}")
    transform = _transform(crop)
    start = float(start_s)
    end = start + max(0.0, float(end_s) - start)
    step = 1 / fps
    out = np.empty((n, size, size, 3), np.uint8)
    got = 0
    try:
        with av.open(p) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            t0 = container.start_time / 1e6 if container.start_time is not None else 0.0
            if start > 0 and stream.time_base:
                container.seek(int((start + t0) / stream.time_base), stream=stream, backward=True)
            next_time = start
            for frame in container.decode(stream):
                if frame.time is None:
                    continue
                t = float(frame.time) - t0
                if t < start:
                    continue
                if t > end or got >= n:
                    break
                first = got
                while t >= next_time and got < n:
                    if got == first:
                        pix = transform(_rgb(frame)[None], size)[0].permute(1, 2, 0).numpy()
                    out[got] = pix
                    got += 1
                    next_time += step
    except av.error.FFmpegError as exc:
        raise MediaError(f"{display(p)}: cannot decode frames at {start_s:.2f}-{end_s:.2f} s ({exc})",
                         path=p, stage="frames") from exc
    if got == 0:
        raise MediaError(f"{display(p)}: no frames decoded at {start_s:.2f}-{end_s:.2f} s",
                         path=p, stage="frames")
    if got < n:
        out[got:] = out[got - 1]
    return out
