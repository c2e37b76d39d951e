"""Per-frame picture statistics gathered during the scene-detection decode, for tasks/transitions.

For each decoded frame (already at the detector's analysis size, BGR) three things are kept:

* the time t_i (s), the frame's own timestamp;
* the grey image's mean μ_i (8-bit luma, BT.601 weights 0.299 R + 0.587 G + 0.114 B as
  OpenCV's BGR→GRAY): a fade to black drives it to ~0, a fade to white to ~255;
* a 16×9 grey thumbnail g_i (area average of the analysis image): enough to compare frames
  that are far apart in time (is this the same picture as before the flash? is this frame a
  blend of the two ends of a dissolve?) while grain and thin scratches average out.

The collector appends to flat ``array``/``bytearray`` buffers (12 bytes + 144 bytes a frame:
~7 MB for 30 minutes at 25 fps), so memory grows with length only by that much and the
per-frame cost is three small OpenCV calls (grey, mean, area resize) on the ~256×144 analysis image.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

import cv2
import numpy as np

THUMB_SIZE = (16, 9)  # (width, height)


@dataclass(frozen=True)
class FrameSeries:
    """The statistics of every frame of one video, in decode order."""

    t: np.ndarray        # (N,) float64, seconds
    mean: np.ndarray     # (N,) float32, grey mean 0…255
    thumbs: np.ndarray   # (N, 9, 16) uint8

    def __len__(self) -> int:
        return int(self.t.shape[0])


class FrameStatsCollector:
    """Accumulates :class:`FrameSeries` one analysis frame at a time."""

    def __init__(self) -> None:
        self._t = array("d")
        self._mean = array("f")
        self._thumbs = bytearray()

    def add(self, t: float, bgr: np.ndarray) -> None:
        grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        self._t.append(t)
        self._mean.append(cv2.mean(grey)[0])
        self._thumbs += cv2.resize(grey, THUMB_SIZE, interpolation=cv2.INTER_AREA).tobytes()

    def series(self) -> FrameSeries:
        """The series as arrays over the collected buffers (no copy: nothing is added after)."""
        w, h = THUMB_SIZE
        return FrameSeries(np.frombuffer(self._t, np.float64),
                           np.frombuffer(self._mean, np.float32),
                           np.frombuffer(self._thumbs, np.uint8).reshape(-1, h, w))
