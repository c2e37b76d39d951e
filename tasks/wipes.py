"""Wipes and irises (one picture replacing another behind a moving edge), read off the
thumbnails of tasks/frame_stats.py.

A dissolve changes every part of the picture a little at a time; a wipe changes each part of
it at once, but different parts at different times: behind an edge that crosses the frame
(a wipe, a barn door, a clock wipe) or a circle that opens or closes (an iris). With
mean-removed 16×9 thumbnails ĝ (tasks/dissolves.py) and a candidate span [a, b] of length
L = b − a that already passed the change, spread and stillness tests of tasks/dissolves.py
(so it is a gradual change of picture between two still ends) but is no blend:

1. **Cells that change.** A cell c is informative when |ĝ_b,c − ĝ_a,c| ≥ ``CELL_MIN``; at
   least ``INFORMATIVE_MIN`` of the cells must be. For those, the progress of cell c at frame
   j is p_j,c = (ĝ_j,c − ĝ_a,c) / (ĝ_b,c − ĝ_a,c) (0 = still A, 1 = already B).
2. **Each cell switches once.** τ_c = the first frame with p ≥ ½, and the cell's distance
   from a step at τ_c, e_c = mean_j |clip(p_j,c, −½, 3⁄2) − [j ≥ τ_c]|, is small: median
   e_c ≤ ``STEP_ERR``. In a dissolve p is a ramp in every cell (e ≈ ¼), under a pan or a
   zoom it wanders through other parts of the scene (e large).
3. **Not all at once, and never back.** The switch times spread over the span,
   τ_90% − τ_10% ≥ ``SPREAD_MIN``·L (a cut switches every cell together), and the share of
   switched cells s_j = mean_c [p_j,c ≥ ½] never falls by more than ``BACK_MAX`` from one
   frame to the next (something crossing the picture and leaving is no wipe).
4. **An edge, not a scatter.** Neighbouring informative cells (left/right, up/down) switch
   at nearby times: median |τ_c − τ_c'| ≤ max(1, ``NEIGHBOUR_MAX``·L) frames. People moving
   about in a shot change cells in no spatial order.

Accepted spans that overlap are one wipe; on their union the transition runs from the last
frame with s ≤ ``EDGE_SHARE`` to the first with s ≥ 1 − ``EDGE_SHARE`` and the boundary goes
to the first frame with s ≥ ½: where half of the picture is the new shot. The sound crosses it as a dissolve's
does (tasks/transitions.py): both overlap over the wipe and the mix crossfades them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tasks.dissolves import merge_spans

CELL_MIN = 12.0
INFORMATIVE_MIN = 0.3
STEP_ERR = 0.12
SPREAD_MIN = 0.35
BACK_MAX = 0.05
NEIGHBOUR_MAX = 0.15
# Where the wipe starts and ends: a tenth of the cells, not a twentieth as for a dissolve's α,
# because moving things in the shots themselves switch a few cells any time.
EDGE_SHARE = 0.1


@dataclass(frozen=True)
class Wipe:
    start: int  # last frame of A alone
    mid: int    # first frame that is more B than A: the boundary
    end: int    # first frame of B alone


def _progress(thumbs: np.ndarray, a: int, b: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(p [L+1, cells] of the informative cells, their mask over the 9×16 grid), or None."""
    x = thumbs[a:b + 1].reshape(b - a + 1, -1).astype(np.float32)
    x -= x.mean(axis=1, keepdims=True)
    diff = x[-1] - x[0]
    mask = np.abs(diff) >= CELL_MIN
    if mask.mean() < INFORMATIVE_MIN:
        return None
    return (x[:, mask] - x[0, mask]) / diff[mask], mask


def _switched(p: np.ndarray) -> np.ndarray:
    """Per frame, the share of informative cells already past half-way."""
    return (p >= 0.5).mean(axis=1)


def is_wipe(thumbs: np.ndarray, a: int, b: int) -> bool:
    """Tests 1–4 of the module docstring on the span [a, b] of a (N, 9, 16) thumbnail series."""
    got = _progress(thumbs, a, b)
    if got is None:
        return False
    p, mask = got
    length = b - a
    past = p >= 0.5
    if not past[-1].all():
        return False
    tau = past.argmax(axis=0)  # first frame past half-way, per cell
    step = (np.arange(length + 1)[:, None] >= tau[None, :]).astype(np.float32)
    err = np.abs(np.clip(p, -0.5, 1.5) - step).mean(axis=0)
    if float(np.median(err)) > STEP_ERR:
        return False
    lo, hi = np.percentile(tau, [10, 90])
    if hi - lo < SPREAD_MIN * length:
        return False
    if (np.diff(_switched(p)) < -BACK_MAX).any():
        return False
    grid = np.full(mask.shape, -1, np.int64)
    grid[mask] = tau
    grid = grid.reshape(thumbs.shape[1], thumbs.shape[2])
    gaps = [np.abs(u - v)[(u >= 0) & (v >= 0)]
            for u, v in ((grid[:, 1:], grid[:, :-1]), (grid[1:, :], grid[:-1, :]))]
    near = np.concatenate(gaps)
    return near.size > 0 and float(np.median(near)) <= max(1.0, NEIGHBOUR_MAX * length)


def find_wipes(thumbs: np.ndarray, spans: list[tuple[int, int]]) -> list[Wipe]:
    """Wipes among ``spans`` (tasks/dissolves.candidate_spans' gradual changes that are not
    dissolves) of a (N, 9, 16) thumbnail series."""
    out: list[Wipe] = []
    for a, b in merge_spans([ab for ab in spans if is_wipe(thumbs, *ab)]):
        got = _progress(thumbs, a, b)
        if got is None:
            continue
        s = _switched(got[0])
        half = np.flatnonzero(s >= 0.5)
        if not len(half):
            continue
        lo = np.flatnonzero(s[:half[0]] <= EDGE_SHARE)
        hi = np.flatnonzero(s >= 1.0 - EDGE_SHARE)
        hi = hi[hi > half[0]]
        out.append(Wipe(a + (int(lo.max()) if len(lo) else 0), a + int(half[0]),
                        a + (int(hi.min()) if len(hi) else b - a)))
    return out
