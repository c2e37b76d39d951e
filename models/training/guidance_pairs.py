"""Segments of a clip and the (target, condition) pairs u_ψ trains on (Hayakawa et al., §3.3).

The guidance branch learns u_ψ(x_t, t, V, ∅, x̃): the velocity of a target segment's audio given
its video and, as the audio condition x̃, a *different, non-overlapping* segment of the same
clip's soundtrack (text null). No multi-track data is needed: any video with one soundtrack
gives pairs.

Segments tile the usable span [a, b) of a clip (the whole clip, or a listing's start/duration):

    S     = ⌊(b − a) / L⌋                       segments of length L (S ≥ 2, else no pair)
    seg_k = [a + k·L, a + (k + 1)·L)            k = 0 … S−1 (disjoint by construction)

A pair is drawn from a generator: target k uniform over S, condition j uniform over the S−1
others. Drawing from (seed, step) makes a resumed run draw what an uninterrupted one would.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Segment:
    start_s: float
    end_s: float


def plan_segments(span_start_s: float, span_end_s: float, segment_s: float) -> list[Segment]:
    """The disjoint segments tiling [span_start_s, span_end_s); fewer than 2 means no pair."""
    if segment_s <= 0:
        raise ValueError(f"segment length must be positive, got {segment_s}")
    n = int((span_end_s - span_start_s) / segment_s + 1e-9)
    return [Segment(span_start_s + k * segment_s, span_start_s + (k + 1) * segment_s) for k in range(max(0, n))]


def draw_pair(num_segments: int, gen: torch.Generator) -> tuple[int, int]:
    """(target, condition) indices, distinct, for a clip of ``num_segments`` segments."""
    if num_segments < 2:
        raise ValueError(f"a pair needs two segments, the clip has {num_segments}")
    target = int(torch.randint(num_segments, (1,), generator=gen))
    other = int(torch.randint(num_segments - 1, (1,), generator=gen))
    return target, other + (other >= target)
