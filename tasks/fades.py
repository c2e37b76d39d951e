"""Fades to and from black or white, read off the per-frame series of tasks/frame_stats.py.

A frame is *flat* when its 16×9 thumbnail g_i is nearly uniform (spatial std of g_i ≤ 6 grey
levels; the area average removes grain, so an old print's black is still flat) and its mean
μ_i is near a colour: black when μ_i ≤ 24, white when μ_i ≥ 231 (8-bit). ThresholdDetector's
rule is μ_i ≤ 12 alone; asking for uniformity as well keeps a night scene from being a fade.

Every maximal run [f₀, f₁] of flat frames of one colour L (0 or 255) is a candidate. Around it
the picture approaches L: with the distance d_i = |median₃(μ)_i − L| (a 3-tap median, so a
single flicker frame does not end a ramp), a fade-out is the stretch before f₀ over which d
rises walking away from the run. The walk keeps the farthest frame so far and stops after
``PATIENCE`` frames with no new maximum beyond tol(d) = 1 + 0.02·d (flicker and motion move
μ by a few levels on a steady picture), after ``MAX_RAMP_S``, or where the picture itself
changes, not just its brightness: a fade scales the picture, so the thumbnail change per
frame Σ|g_i − g_{i−1}|/144 stays near |μ_i − μ_{i−1}|; at a cut it is far larger
(> 3·|Δμ| + 8). The ramp's far end is the fade's start (last frame of the full picture);
the same walk after f₁ finds where a fade-in ends.

The boundary goes to the darkest (for white: brightest) frame: the middle of the frames of
the run within 1 level of its extreme, so a black hold is split evenly between the shots.
A ramp of fewer than ``MIN_RAMP`` frames is a cut into or out of the colour.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tasks.frame_stats import FrameSeries

FLAT_STD = 6.0
BLACK_MEAN = 24.0
WHITE_MEAN = 231.0
PATIENCE = 4
MAX_RAMP_S = 5.0
MIN_RAMP = 3


@dataclass(frozen=True)
class Fade:
    colour: str      # "black" | "white"
    out_start: int   # last frame of the full picture before the fade-out (== flat_start − 1 at a cut)
    flat_start: int  # first flat frame
    flat_end: int    # last flat frame
    in_end: int      # first frame of the full picture after the fade-in (== flat_end + 1 at a cut)
    extreme: int     # the darkest (brightest) frame: where the boundary goes

    @property
    def ramp_out(self) -> int:
        return self.flat_start - self.out_start

    @property
    def ramp_in(self) -> int:
        return self.in_end - self.flat_end


CHUNK = 1024  # frames per block: temporaries stay small however long the video


def thumb_change(series: FrameSeries) -> np.ndarray:
    """c_i = mean |g_i − g_{i−1}| over the thumbnail (c_0 = 0): the content-change score."""
    n = len(series)
    g = series.thumbs.reshape(n, -1)
    c = np.zeros(n, np.float32)
    for a in range(1, n, CHUNK):
        b = min(n, a + CHUNK)
        c[a:b] = np.abs(g[a:b].astype(np.int16) - g[a - 1:b - 1]).mean(axis=1)
    return c


def flat_colour(series: FrameSeries) -> np.ndarray:
    """Per frame: 0 not flat, 1 flat black, 2 flat white."""
    n = len(series)
    g = series.thumbs.reshape(n, -1)
    spread = np.empty(n, np.float32)
    for a in range(0, n, CHUNK):
        spread[a:a + CHUNK] = g[a:a + CHUNK].astype(np.float32).std(axis=1)
    flat = spread <= FLAT_STD
    out = np.zeros(len(series), np.int8)
    out[flat & (series.mean <= BLACK_MEAN)] = 1
    out[flat & (series.mean >= WHITE_MEAN)] = 2
    return out


def _median3(x: np.ndarray) -> np.ndarray:
    """3-tap running median, edges repeated (numpy only: scipy would cost ~20 MB to import)."""
    p = np.concatenate([x[:1], x, x[-1:]])
    a, b, c = p[:-2], p[1:-1], p[2:]
    return np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))


def _walk(dist: np.ndarray, mean: np.ndarray, change: np.ndarray, start: int, step: int,
          max_len: int) -> int:
    """From the flat frame ``start``, walk by ``step`` while the picture keeps getting farther
    from the colour (see the module docstring); return the farthest frame reached."""
    n = len(dist)
    best, best_j, j = float(dist[start]), start, start
    while True:
        nxt = j + step
        if not 0 <= nxt < n or abs(nxt - start) > max_len:
            break
        # the change between frames j and nxt: is it a rescaling of the same picture?
        k = max(j, nxt)
        if change[k] > 3.0 * abs(float(mean[k]) - float(mean[k - 1])) + 8.0:
            if best_j == start:  # the full picture sits right next to the run: a cut into it
                best_j = nxt
            break
        j = nxt
        if dist[j] > best + 1.0 + 0.02 * best:
            best, best_j = float(dist[j]), j
        elif abs(j - best_j) >= PATIENCE:
            break
    return best_j


def find_fades(series: FrameSeries, fps: float) -> list[Fade]:
    """Every run of flat black or white frames with the fade-out before it and fade-in after it."""
    n = len(series)
    if n == 0:
        return []
    colour = flat_colour(series)
    change = thumb_change(series)
    mean = _median3(series.mean.astype(np.float32))
    max_len = max(MIN_RAMP, int(round(MAX_RAMP_S * fps)))
    out: list[Fade] = []
    i = 0
    while i < n:
        if colour[i] == 0:
            i += 1
            continue
        c = colour[i]
        j = i
        while j + 1 < n and colour[j + 1] == c:
            j += 1
        level = 0.0 if c == 1 else 255.0
        dist = np.abs(mean - level)
        out_start = _walk(dist, series.mean, change, i, -1, max_len) if i > 0 else i
        in_end = _walk(dist, series.mean, change, j, +1, max_len) if j < n - 1 else j
        run = series.mean[i:j + 1]
        ext = run.min() if c == 1 else run.max()
        near = np.flatnonzero(np.abs(run - ext) <= 1.0) + i
        out.append(Fade("black" if c == 1 else "white", min(out_start, i - 1) if i > 0 else 0, i, j,
                        max(in_end, j + 1) if j < n - 1 else n - 1, int(near[len(near) // 2])))
        i = j + 1
    return out
