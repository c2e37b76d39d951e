"""Is this footage FoleyWorld? The demo bundle's captioner and scorer know only FoleyWorld's
painted scenes (a smooth vertical-gradient background, 1–3 flat-coloured objects); on real
footage they still answer, with FoleyWorld sounds ("A clock ticks" for a city street). This
check tells the user so.

Features of a scene's keyframes (uint8 ``[T, H, W, 3]``, read at 64 px as the prompt stage
reads them):

    c = fraction of pixels within 6 grey levels (every channel) of their row's median colour
        (FoleyWorld rows are one colour apart from the objects: c ≈ 0.6–0.97)
    h = log(0.1 + mean |x[:, :, j+1] − x[:, :, j]|)       horizontal detail
    v = log(0.1 + mean |x[:, i+1] − x[:, i]|)             vertical detail
    f = (c, h, v)

and the out-of-domain distance is the Mahalanobis distance to FoleyWorld's feature
distribution, d = sqrt((f − μ)ᵀ Σ⁻¹ (f − μ)), with μ, Σ measured on FoleyWorld training-split
scenes encoded and decoded as the stage sees them (h264, 4 fps, 64 px;
``benchmarks/ood_signal.py`` re-measures them and the separation: docs/evaluation.md).
``d > THRESHOLD`` flags the scene as not FoleyWorld. A flat frame (no objects) is far from
FoleyWorld too: every FoleyWorld scene has something in it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Measured by benchmarks/ood_signal.py on FoleyWorld train seeds 0..79 (see docs/evaluation.md).
FOLEYWORLD_MEAN = np.array([0.8286, 0.8692, 1.0808])
FOLEYWORLD_COV = np.array([[0.01106, -0.047688, -0.042028],
                           [-0.047688, 0.542445, 0.335952],
                           [-0.042028, 0.335952, 0.291877]])
# Held-out FoleyWorld scenes reach d = 3.3 (median 1.6); real-ish footage mostly 5.5-10.7.
THRESHOLD = 4.0


@dataclass(frozen=True)
class DomainCheck:
    distance: float
    out_of_domain: bool
    features: tuple[float, float, float]


def keyframe_features(frames: np.ndarray) -> np.ndarray:
    """``(c, h, v)`` of the module docstring."""
    f = np.asarray(frames, dtype=np.float32)
    if f.ndim != 4 or f.shape[-1] != 3 or f.shape[0] == 0:
        raise ValueError(f"expected frames [T, H, W, 3], got {f.shape}")
    med = np.median(f, axis=2, keepdims=True)
    c = float((np.abs(f - med).max(-1) <= 6).mean())
    h = float(np.log(0.1 + np.abs(np.diff(f, axis=2)).mean())) if f.shape[2] > 1 else 0.0
    v = float(np.log(0.1 + np.abs(np.diff(f, axis=1)).mean())) if f.shape[1] > 1 else 0.0
    return np.array([c, h, v])


def foleyworld_distance(frames: np.ndarray, mean: np.ndarray = FOLEYWORLD_MEAN,
                        cov: np.ndarray = FOLEYWORLD_COV) -> float:
    d = keyframe_features(frames) - mean
    return float(np.sqrt(max(0.0, d @ np.linalg.solve(cov, d))))


def check_domain(frames: np.ndarray, threshold: float = THRESHOLD) -> DomainCheck:
    feats = keyframe_features(frames)
    dist = foleyworld_distance(frames)
    return DomainCheck(dist, dist > threshold, tuple(float(x) for x in feats))
