"""MMAudio's video preprocessing (``load_video``): which decoded frames are kept, and their pixels.

Frame picking, per output rate r (8 fps for CLIP, 25 fps for Synchformer). Decoded frames come in
presentation order with times t_i (seconds); frames after ``end`` are ignored:

    next ← start
    for each frame i with start ≤ t_i ≤ end:
        while t_i ≥ next:  emit i;  next ← next + 1/r        (float accumulation)

The accumulation is deliberate parity, not an idealised grid: at r = 25 the sum reaches
0.12000000000000001 after three steps, so a 25 fps source skips frame 6 and repeats frame 7; a
12 fps source repeats frames. Then the official ``load_video`` shortens the duration d to what both
streams cover (``len / r`` when shorter than d) and keeps int(8 d) CLIP and int(25 d) sync frames
(4.7 s of a 25 fps video comes back as 4.68 s). The official code always starts at 0; ``start``
is this project's generalisation for windows inside a longer asset (identical at 0).

Pixels (uint8 in, as torchvision's v2 transforms on uint8 tensors on the CPU):

* CLIP: bicubic resize with antialiasing, squashing to 384 × 384 (no aspect preservation), then
  x / 255 ∈ [0, 1].
* Sync: bicubic antialiased resize of the SHORT side to 224 (long side int(224 · long / short)),
  centre crop 224 × 224 at offsets round((H − 224) / 2), round((W − 224) / 2) (Python's
  round-half-to-even), then x / 255 and (x − 0.5) / 0.5 ∈ [−1, 1].

Antialiased bicubic = Keys' cubic kernel (a = −0.5, as PIL) stretched by the down-scaling factor, taps
normalised to sum 1 (PIL's resampling). ``torch.nn.functional.interpolate(..., mode="bicubic",
antialias=True)`` on a uint8 tensor runs torch's native uint8 kernel on the CPU (fixed-point
weights, rounding and clamping inside), which is what torchvision calls; it matches the official
uint8 frames exactly. Going through float32 and rounding instead is off by up to one level, so
that path is only the fallback for non-CPU tensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

CLIP_FPS = 8.0
SYNC_FPS = 25.0
CLIP_SIZE = 384
SYNC_SIZE = 224


# ---------------------------------------------------------------------------- frame picking

def pick_frames(frame_times: Sequence[float], fps: float, end_sec: float, start_sec: float = 0.0) -> list[int]:
    """Indices (into ``frame_times``) of the frames the official reader emits at ``fps``."""
    step = 1 / fps
    next_time = float(start_sec)
    picked: list[int] = []
    for i, t in enumerate(frame_times):
        if t < start_sec:
            continue
        if t > end_sec:
            break
        while t >= next_time:
            picked.append(i)
            next_time += step
    return picked


@dataclass(frozen=True)
class FrameSelection:
    """What ``load_video`` keeps: source frame indices per stream and the (possibly shortened) duration."""

    clip_indices: list[int]
    sync_indices: list[int]
    duration: float


def select_frames(frame_times: Sequence[float], duration: float, start_sec: float = 0.0,
                  clip_fps: float = CLIP_FPS, sync_fps: float = SYNC_FPS) -> FrameSelection:
    """Pick both streams over ``[start, start + duration]`` and truncate them as ``load_video`` does."""
    end = start_sec + duration
    clip = pick_frames(frame_times, clip_fps, end, start_sec)
    sync = pick_frames(frame_times, sync_fps, end, start_sec)
    d = float(duration)
    if len(clip) / clip_fps < d:
        d = len(clip) / clip_fps
    if len(sync) / sync_fps < d:
        d = len(sync) / sync_fps
    return FrameSelection(clip[: int(clip_fps * d)], sync[: int(sync_fps * d)], d)


# ---------------------------------------------------------------------------- pixels

def _as_nchw_u8(frames: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 ``[T, H, W, 3]`` (decoder layout) → ``[T, 3, H, W]``."""
    x = torch.as_tensor(frames)
    if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames [T, H, W, 3], got {x.dtype} {tuple(x.shape)}")
    return x.permute(0, 3, 1, 2)


def resize_bicubic_u8(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Antialiased bicubic resize of uint8 ``[T, C, H, W]`` to ``size`` (H, W), uint8 out."""
    if x.device.type == "cpu":
        return F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)
    y = F.interpolate(x.float(), size=size, mode="bicubic", align_corners=False, antialias=True)
    return y.clamp_(0, 255).round_().to(torch.uint8)


def short_side_size(height: int, width: int, short: int) -> tuple[int, int]:
    """(H, W) after resizing the short side to ``short`` (long side truncated, as torchvision)."""
    if width <= height:
        return int(short * height / width), short
    return short, int(short * width / height)


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    if h < size or w < size:
        raise ValueError(f"cannot centre-crop {size} from {h}×{w}")
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return x[..., top: top + size, left: left + size]


def clip_frames_u8(frames: torch.Tensor | np.ndarray, size: int = CLIP_SIZE) -> torch.Tensor:
    """uint8 ``[T, H, W, 3]`` → uint8 ``[T, 3, size, size]`` (squashed)."""
    return resize_bicubic_u8(_as_nchw_u8(frames), (size, size))


def sync_frames_u8(frames: torch.Tensor | np.ndarray, size: int = SYNC_SIZE) -> torch.Tensor:
    """uint8 ``[T, H, W, 3]`` → uint8 ``[T, 3, size, size]`` (short side resized, centre-cropped)."""
    x = _as_nchw_u8(frames)
    return center_crop(resize_bicubic_u8(x, short_side_size(x.shape[-2], x.shape[-1], size)), size)


def u8_to_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 → float32 in [0, 1], as ``ToDtype(float32, scale=True)``."""
    return x.to(torch.float32).mul_(1 / 255)


def clip_pixels(frames: torch.Tensor | np.ndarray, size: int = CLIP_SIZE) -> torch.Tensor:
    """CLIP input frames: float32 ``[T, 3, 384, 384]`` in [0, 1]."""
    return u8_to_unit(clip_frames_u8(frames, size))


def sync_pixels(frames: torch.Tensor | np.ndarray, size: int = SYNC_SIZE) -> torch.Tensor:
    """Synchformer input frames: float32 ``[T, 3, 224, 224]`` in [−1, 1]."""
    return (u8_to_unit(sync_frames_u8(frames, size)) - 0.5) / 0.5
