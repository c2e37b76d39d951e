"""Dissolves (cross-fades between two shots), read off the thumbnails of tasks/frame_stats.py.

During a dissolve from picture A to picture B every frame is a blend,
F_j = (1 − α_j)·A + α_j·B with α rising from 0 to 1, so per frame the picture changes only a
little (AdaptiveDetector sees no cut) while over the whole transition it changes as much as at
a cut. With thumbnails g (16×9, grey, as vectors) and a span [a, b] = [m − h, m + h]:

1. **Change.** D = mean|g_b − g_a| ≥ 18 grey levels, and the mean-removed thumbnails of the
   ends correlate by at most 0.8 (both with a spatial std ≥ 6): the picture changed, not
   just its brightness or contrast (flicker, exposure, a fade, which tasks/fades.py handles).
2. **Spread.** No single step carries it: max_{a<j≤b} mean|ĝ_j − ĝ_{j−1}| ≤ 0.5·D (a cut
   inside the span is a cut, not a dissolve), where ĝ is the thumbnail minus its own mean:
   steps, the stillness test and the blend fit below all use ĝ, so film flicker (a whole
   frame brighter or darker) counts as no change.
3. **Blend.** Each frame between is the blend of the ends: with
   α_j = ⟨ĝ_j − ĝ_a, ĝ_b − ĝ_a⟩ / ‖ĝ_b − ĝ_a‖² the residual
   ‖ĝ_j − ĝ_a − α_j(ĝ_b − ĝ_a)‖ / ‖ĝ_b − ĝ_a‖ ≤ 0.3, and α_j never falls by more than
   0.15 from one frame to the next. A camera move also changes the picture gradually, but its
   middle frames show a shifted scene, not a double exposure of the ends: a large residual.
4. **Stillness at the ends.** Just outside each end, the change across ``EDGE`` (4) frames
   minus the change across one, mean|ĝ_a − ĝ_{a−4}| − mean|ĝ_a − ĝ_{a−1}|, is at most
   0.6·3·D/(b − a), 60 % of what three more frames at the span's own average rate would add:
   a pan or a zoom that goes on is not a transition. Grain is new in every frame, so it makes
   the one-frame and the four-frame change alike and cancels; motion accumulates and does not.

Half-lengths h run over 0.1 … 1.6 s (dissolves of 0.2 … 3.2 s). Accepted spans that overlap
are one dissolve; on the widest, the transition runs from the last frame with α ≤ 0.05 to the
first with α ≥ 0.95, and the boundary goes to the first frame with α ≥ 0.5 (its midpoint).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHANGE_MIN = 18.0
CORR_MAX = 0.8
FLAT_STD = 6.0
SPREAD = 0.5
RESIDUAL_MAX = 0.3
ALPHA_DROP = 0.15
EDGE = 4
STILL = 0.6
CHUNK = 1024  # frames per block of the vectorised scan (temporaries ≤ 0.6 MB each)
HALF_LENGTHS_S = (0.1, 0.16, 0.25, 0.4, 0.6, 1.0, 1.6)


@dataclass(frozen=True)
class Dissolve:
    start: int  # last frame of A alone
    mid: int    # first frame that is more B than A: the boundary
    end: int    # first frame of B alone


def _blend(g: np.ndarray, a: int, b: int) -> tuple[np.ndarray, float] | None:
    """(α_j for j = a … b, largest residual) of the mean-removed frames between ``a`` and ``b``."""
    c = _centred(g, slice(a, b + 1))
    diff = c[-1] - c[0]
    norm2 = float(diff @ diff)
    if norm2 <= 0:
        return None
    seg = c - c[0]
    alpha = seg @ diff / norm2
    resid = np.linalg.norm(seg - alpha[:, None] * diff[None, :], axis=1) / np.sqrt(norm2)
    return alpha, float(resid.max())


def _centred(g: np.ndarray, rows: np.ndarray | slice) -> np.ndarray:
    """Mean-removed float32 thumbnails of ``rows`` only (never all N at once: a 30-minute video
    has 45,000 frames, and a float copy of every thumbnail would be 26 MB)."""
    x = g[rows].astype(np.float32)
    return x - x.mean(axis=-1, keepdims=True)


def candidate_spans(thumbs: np.ndarray, fps: float, excluded: np.ndarray | None = None) -> list[tuple[int, int]]:
    """Spans [a, b] of a (N, 9, 16) thumbnail series that pass tests 1, 2 and 4 (change,
    spread, stillness at the ends): a gradual change of picture, to be told apart as a
    dissolve (test 3, here) or a wipe (tasks/wipes.py). Frames where ``excluded`` is true
    (those of fades) are never part of one."""
    n = len(thumbs)
    g = thumbs.reshape(n, -1)
    if n < 5:
        return []
    # steps, stillness and the blend fit on mean-removed thumbnails: film flicker shifts a
    # whole frame's brightness, which would otherwise look like change at every frame
    step = np.zeros(n, np.float32)
    norms = np.empty(n, np.float32)
    for lo in range(0, n, CHUNK):
        c = _centred(g, slice(max(0, lo - 1), lo + CHUNK))
        norms[lo:lo + CHUNK] = np.linalg.norm(c[1:] if lo else c, axis=1)
        if len(c) > 1:
            step[max(1, lo):lo + CHUNK] = np.abs(np.diff(c, axis=0)).mean(axis=1)
    bad = np.zeros(n, bool) if excluded is None else excluded.astype(bool)
    spans: list[tuple[int, int]] = []
    for h in sorted({max(2, int(round(x * fps))) for x in HALF_LENGTHS_S}):
        if 2 * h + 2 * EDGE >= n:
            break
        # largest single step within (a, b]: windows of 2h steps starting at a + 1
        peaks = np.lib.stride_tricks.sliding_window_view(step, 2 * h).max(axis=1)
        for lo in range(h + EDGE, n - h - EDGE, CHUNK):
            m = np.arange(lo, min(lo + CHUNK, n - h - EDGE))
            a, b = m - h, m + h
            big = np.abs(g[b].astype(np.int16) - g[a]).mean(axis=1)
            ca, cb = _centred(g, a), _centred(g, b)
            na, nb = norms[a], norms[b]
            corr = (ca * cb).sum(axis=1) / np.maximum(na * nb, 1e-6)
            textured = np.minimum(na, nb) >= FLAT_STD * np.sqrt(g.shape[1])
            ok = (big >= CHANGE_MIN) & textured & (corr <= CORR_MAX) & (peaks[a + 1] <= SPREAD * big)
            for mi in np.flatnonzero(ok):
                aa, bb, d = int(a[mi]), int(b[mi]), float(big[mi])
                if bad[aa:bb + 1].any():
                    continue
                rate = d / (bb - aa)
                c = _centred(g, np.array([aa - EDGE, aa, bb, bb + EDGE]))
                outside = max(np.abs(c[1] - c[0]).mean() - step[aa], np.abs(c[3] - c[2]).mean() - step[bb + 1])
                if outside > STILL * (EDGE - 1) * rate:
                    continue
                spans.append((aa, bb))
    return spans


def is_blend(thumbs: np.ndarray, a: int, b: int) -> bool:
    """Test 3: every frame of [a, b] is a blend of its ends, α never falling back."""
    fit = _blend(thumbs.reshape(len(thumbs), -1), a, b)
    if fit is None:
        return False
    alpha, resid = fit
    return not (resid > RESIDUAL_MAX or (np.diff(alpha) < -ALPHA_DROP).any())


def find_dissolves(thumbs: np.ndarray, fps: float, excluded: np.ndarray | None = None,
                   spans: list[tuple[int, int]] | None = None) -> list[Dissolve]:
    """Dissolves in a (N, 9, 16) thumbnail series; frames where ``excluded`` is true (those of
    fades) are never part of one. ``spans``: ``candidate_spans``' result, when already known."""
    g = thumbs.reshape(len(thumbs), -1)
    if spans is None:
        spans = candidate_spans(thumbs, fps, excluded)
    out: list[Dissolve] = []
    for aa, bb in merge_spans([ab for ab in spans if is_blend(thumbs, *ab)]):
        fit = _blend(g, aa, bb)
        if fit is None:
            continue
        alpha = fit[0]
        lo = np.flatnonzero(alpha <= 0.05)
        hi = np.flatnonzero(alpha >= 0.95)
        half = np.flatnonzero(alpha >= 0.5)
        start = aa + int(lo[lo < half[0]].max()) if len(lo[lo < half[0]]) else aa
        end = aa + int(hi[hi > half[0]].min()) if len(hi[hi > half[0]]) else bb
        out.append(Dissolve(start, aa + int(half[0]), end))
    return out


def merge_spans(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping spans → their union, one per transition."""
    out: list[list[int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]
