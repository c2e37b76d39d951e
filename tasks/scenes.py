"""Shots (PySceneDetect) and model windows.

Detector: AdaptiveDetector (rolling-average content change, threshold 3.0) with PySceneDetect's
automatic downscale. On FoleyWorld cuts and ffmpeg lavfi test patterns it found every hard cut
to the frame, and ECOSYSTEM.md's measurement on an 8-scene 640×360 video found all 7 cuts
where ContentDetector missed one; it is also less prone to split a shot on fast motion.
Cut times come back as frame numbers, converted with the stream's real frame rate; for VFR
input the PyAV backend reports each frame's own timestamp.

Windows: shots shorter than ``min_shot_s`` merge into a neighbour (the previous one; the first
into the next). A shot of length L ≤ W (the model window, 8 s) is one window. A longer shot
gets n = ⌈(L − o)/(W − o)⌉ windows of exactly W seconds, evenly spaced:

    start_i = s + i · (L − W)/(n − 1),   i = 0 … n−1

so the overlap W − (L − W)/(n − 1) is at least o (1 s, crossfaded at mix time) and the last
window ends exactly at the shot's end: no sliver, no window longer than the model's.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from tasks.errors import MediaError
from tasks.media_paths import display


logging.getLogger("pyscenedetect").setLevel(logging.WARNING)


@dataclass(frozen=True)
class Shot:
    index: int
    start_s: float
    end_s: float

    @property
    def length_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class Window:
    shot_index: int
    window_index: int
    start_s: float
    end_s: float
    shot_start_s: float
    shot_end_s: float

    def to_json(self) -> dict[str, float | int]:
        return asdict(self)


def detect_cuts(path: Path, threshold: float = 3.0) -> tuple[list[float], float, float]:
    """Cut times (s), the video's duration (s) and frame rate, by PySceneDetect."""
    from scenedetect import AdaptiveDetector, SceneManager, open_video

    logging.getLogger("pyscenedetect").setLevel(logging.WARNING)

    try:
        video = open_video(str(path), backend="pyav")
    except Exception as exc:  # the backend raises its own error types for unreadable input
        raise MediaError(f"{display(path)}: scene detection cannot open the video ({exc})",
                         path=str(path), stage="scenes") from exc
    manager = SceneManager()
    manager.auto_downscale = True
    manager.add_detector(AdaptiveDetector(adaptive_threshold=threshold, min_scene_len=6))
    manager.detect_scenes(video=video, show_progress=False)
    fps = float(video.frame_rate)
    cuts = [float(scene[0].seconds) for scene in manager.get_scene_list()[1:]]
    duration = float(video.duration.seconds) if video.duration else 0.0
    pos = float(video.position.seconds) + 1.0 / fps if fps else 0.0
    return cuts, max(duration, pos), fps


def shots_from_cuts(cuts: list[float], duration: float, min_shot_s: float = 1.0) -> list[Shot]:
    """Cut times → shots, merging shots shorter than ``min_shot_s`` into a neighbour."""
    bounds = [0.0] + sorted(c for c in cuts if 0.0 < c < duration) + [duration]
    spans = [[a, b] for a, b in zip(bounds, bounds[1:]) if b > a]
    merged: list[list[float]] = []
    for span in spans:
        if merged and (span[1] - span[0] < min_shot_s or merged[-1][1] - merged[-1][0] < min_shot_s):
            merged[-1][1] = span[1]
        else:
            merged.append(span)
    return [Shot(i, a, b) for i, (a, b) in enumerate(merged)]


def detect_shots(path: Path, min_shot_s: float = 1.0) -> list[Shot]:
    cuts, duration, _fps = detect_cuts(path)
    if duration <= 0:
        raise MediaError(f"{display(path)}: no frames to detect scenes in", path=str(path), stage="scenes")
    return shots_from_cuts(cuts, duration, min_shot_s)


def plan_windows(shots: list[Shot], window_s: float = 8.0, overlap_s: float = 1.0) -> list[Window]:
    """Model windows for each shot (see the module docstring for the spacing rule)."""
    if not 0 <= overlap_s < window_s:
        raise ValueError("overlap must be in [0, window)")
    out: list[Window] = []
    for shot in shots:
        length = shot.length_s
        if length <= window_s + 1e-9:
            out.append(Window(shot.index, 0, shot.start_s, shot.end_s, shot.start_s, shot.end_s))
            continue
        n = math.ceil((length - overlap_s) / (window_s - overlap_s) - 1e-9)
        n = max(n, 2)
        stride = (length - window_s) / (n - 1)
        for i in range(n):
            a = shot.start_s + i * stride
            b = shot.end_s if i == n - 1 else a + window_s
            out.append(Window(shot.index, i, round(a, 6), round(b, 6), shot.start_s, shot.end_s))
    return out
