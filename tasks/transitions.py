"""Shot boundaries from one decoding pass: hard cuts, fades, dissolves and wipes, flashes rejected.

Inputs: AdaptiveDetector's cut times and the per-frame series (tasks/frame_stats.py).
Fades come from tasks/fades.py, dissolves from tasks/dissolves.py, wipes from tasks/wipes.py
(on the gradual changes that are not blends); this module reconciles
them with the cuts into one list of :class:`Boundary`, each saying where the sound switches:

* **fade** (through black or white): the boundary is the darkest (brightest) frame; the
  earlier shot's sound stops where the picture is gone (first flat frame) after fading out
  over the fade-out ramp, the later shot's starts at the first visible frame and fades in
  over the fade-in ramp. The flat frames belong to no sound of their own: no window covers
  them. A run of flat frames at the start (end) of the asset is no boundary, only where the
  first shot's sound starts (the last one's stops).
* **dissolve**: the boundary is the midpoint; the earlier shot's sound runs on to the end of
  the dissolve and the later one's starts at its beginning, so the two overlap over the
  dissolve and the mix crossfades them there.
* **wipe** (and iris): one picture replacing the other behind a moving edge
  (tasks/wipes.py); the boundary is where half of the picture is the new shot, the sound
  crosses it as a dissolve's does.
* **cut**: AdaptiveDetector's cut, unless it falls inside a fade or dissolve (PySceneDetect
  fires on the first frames out of black, and anywhere a dissolve crosses its threshold) or
  is a **flash**: within ``FLASH_S`` after the cut the picture is back to the one before it,
  up to brightness (mean-removed thumbnails differ by ≤ ``SAME_PICTURE`` grey levels, or by
  less than a third of the jump the cut made). A flat run returning to the same picture
  without a ramp on either side and shorter than ``FLASH_S`` is a flash too, not a fade.

Film flicker and grain change brightness and fine detail, not the 16×9 mean-removed picture,
so they trigger none of these; a camera move fails the dissolve's blend test (tasks/dissolves.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tasks.dissolves import Dissolve, candidate_spans, find_dissolves
from tasks.fades import MIN_RAMP, find_fades, flat_colour
from tasks.frame_stats import FrameSeries
from tasks.wipes import find_wipes

FLASH_S = 0.3
SAME_PICTURE = 8.0


@dataclass(frozen=True)
class Boundary:
    """Where one shot ends and the next begins, and how the sound crosses it."""

    time_s: float        # the boundary (shot end = next shot start)
    kind: str            # "cut" | "fade" | "dissolve" | "wipe"
    before_s: float      # the earlier shot's sound ends here
    before_ramp_s: float  # ...fading out over this long (fades; the dissolve's length for a dissolve)
    after_s: float       # the later shot's sound starts here
    after_ramp_s: float  # ...fading in over this long


@dataclass(frozen=True)
class Edge:
    """Where the asset's sound starts (ends), after a fade-in from (before a fade-out to) a colour."""

    sound_s: float
    ramp_s: float
    fade: bool


@dataclass(frozen=True)
class Transitions:
    boundaries: list[Boundary]
    head: Edge
    tail: Edge


class _Centred:
    """Mean-removed thumbnails, computed for the few frames asked about (not all N at once)."""

    def __init__(self, series: FrameSeries) -> None:
        self._g = series.thumbs.reshape(len(series), -1)

    def __len__(self) -> int:
        return len(self._g)

    def __getitem__(self, i: int) -> np.ndarray:
        x = self._g[i].astype(np.float32)
        return x - x.mean()


def _same_picture(c: _Centred, i: int, j: int, jump: float | None = None) -> bool:
    d = float(np.abs(c[i] - c[j]).mean())
    return d <= SAME_PICTURE or (jump is not None and d < jump / 3.0)


def _is_flash_cut(c: _Centred, i: int, k: int) -> bool:
    """Does the picture come back to frame i − 1's within k frames after the cut at frame i?"""
    if i < 1:
        return False
    jump = float(np.abs(c[i] - c[i - 1]).mean())
    return any(_same_picture(c, i - 1, j, jump) for j in range(i + 1, min(len(c), i + 1 + k)))


def find_transitions(series: FrameSeries, cuts: list[float], duration_s: float,
                     fps: float) -> Transitions:
    """Boundaries (time order) and the asset's sound start/end, from one scan's outputs."""
    n = len(series)
    t = series.t
    end_t = lambda i: float(t[i + 1]) if i + 1 < n else duration_s  # noqa: E731 (end of frame i)
    head, tail = Edge(0.0, 0.0, False), Edge(duration_s, 0.0, False)
    if n == 0:
        return Transitions([], head, tail)
    c = _Centred(series)
    flash_k = max(1, int(round(FLASH_S * fps)))
    spans: list[tuple[int, int]] = []
    found: list[tuple[int, Boundary]] = []
    for f in find_fades(series, fps):
        spans.append((f.out_start, f.in_end))
        if f.flat_start == 0:
            if f.flat_end < n - 1:
                head = Edge(float(t[f.flat_end + 1]), float(t[f.in_end] - t[f.flat_end + 1]),
                            f.ramp_in >= MIN_RAMP)
            continue
        if f.flat_end == n - 1:
            tail = Edge(float(t[f.flat_start]), float(t[f.flat_start] - t[f.out_start + 1]),
                        f.ramp_out >= MIN_RAMP)
            continue
        short = end_t(f.flat_end) - float(t[f.flat_start]) <= FLASH_S
        if (short and f.ramp_out < MIN_RAMP and f.ramp_in < MIN_RAMP
                and _same_picture(c, f.flat_start - 1, f.flat_end + 1)):
            continue  # a flash (or a dropped-frame dip): the same picture either side
        kind = "fade" if max(f.ramp_out, f.ramp_in) >= MIN_RAMP else "cut"
        before = float(t[f.flat_start])
        after = float(t[f.flat_end + 1])
        found.append((f.extreme, Boundary(float(t[f.extreme]), kind, before,
                                          before - float(t[f.out_start + 1]) if f.ramp_out >= MIN_RAMP else 0.0,
                                          after, float(t[f.in_end] - after) if f.ramp_in >= MIN_RAMP else 0.0)))
    in_fade = flat_colour(series) > 0
    for a, b in spans:
        in_fade[a:b + 1] = True
    gradual = candidate_spans(series.thumbs, fps, excluded=in_fade)
    dissolves = find_dissolves(series.thumbs, fps, spans=gradual)
    not_blends = [(a, b) for a, b in gradual if not any(a <= d.end and d.start <= b for d in dissolves)]
    for d in [*dissolves, *find_wipes(series.thumbs, not_blends)]:
        spans.append((d.start, d.end))
        a, b = float(t[d.start + 1]), float(t[d.end])
        kind = "dissolve" if isinstance(d, Dissolve) else "wipe"
        found.append((d.mid, Boundary(float(t[d.mid]), kind, b, b - a, a, b - a)))
    for ct in cuts:
        i = int(np.searchsorted(t, ct - 1e-6))
        if i >= n:
            continue
        if any(a <= i <= b + 1 for a, b in spans) or _is_flash_cut(c, i, flash_k):
            continue
        found.append((i, Boundary(float(ct), "cut", float(ct), 0.0, float(ct), 0.0)))
    found.sort(key=lambda x: x[0])
    out: list[Boundary] = []
    last_i = -(10 ** 9)
    for i, b in found:
        if i - last_i <= 1 and out:  # two findings on neighbouring frames: one boundary
            if out[-1].kind == "cut" and b.kind != "cut":
                out[-1] = b
            continue
        out.append(b)
        last_i = i
    return Transitions(out, head, tail)
