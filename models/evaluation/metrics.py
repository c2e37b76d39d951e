"""Statistics of the evaluation: separability, Fréchet distance, class-set recall, bootstrap CIs.

Separability of track k (the paper's CLAP audio–audio similarity, with our judge's embedding
e(·)): the cosine similarity of the track to the audio that existed before it, ×100,

    sep_k = 100 · ⟨e(track_k), e(Σ_{j<k} track_j)⟩ / (‖e(track_k)‖ ‖e(Σ_{j<k} track_j)‖)

(lower = the new track differs more from what is already there).

Fréchet distance between two sets of embeddings with means μ₁, μ₂ and covariances Σ₁, Σ₂:

    FD = ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^{½})

(computed exactly through an n×n singular value decomposition, see ``frechet_distance``). With fewer samples than dimensions the covariances are rank-deficient and FD is
biased upwards; it is still comparable between methods evaluated on the same scenes, which is
how it is used here.

Class-set recall of a mix of K prompted classes: |top-K classes by the judge's score ∩ prompted| / K
(rank-based, so judges with differently calibrated scores are comparable).

Confidence intervals: percentile bootstrap over *scenes* (the unit that was sampled; the tracks
of one scene are correlated), 2000 resamples, 95 %. Paired differences between two methods use
the same resampled scenes for both, so scene difficulty cancels.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


def cosine100(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 or nb == 0.0:
        return 0.0
    return 100.0 * float(np.dot(a, b)) / (na * nb)


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """FD between embedding sets ``x [n, d]`` and ``y [m, d]`` (n, m ≥ 2).

    With centred data A = x − μ₁, B = y − μ₂, Σ₁ = AᵀA/(n−1), Σ₂ = BᵀB/(m−1). Σ₁Σ₂ (a product
    of PSD matrices) has real non-negative eigenvalues, the non-zero ones equal to those of
    (ABᵀ)(ABᵀ)ᵀ/((n−1)(m−1)); so tr (Σ₁Σ₂)^{½} = ‖ABᵀ‖_* / √((n−1)(m−1)), the nuclear norm of an
    n×m matrix: exact, and no d×d matrix square root (d = 1024 for YAMNet)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError("Fréchet distance needs at least two samples per set")
    mu1, mu2 = x.mean(0), y.mean(0)
    a, b = x - mu1, y - mu2
    tr1, tr2 = float(np.sum(a * a)) / (n - 1), float(np.sum(b * b)) / (m - 1)
    cross = float(np.linalg.svd(a @ b.T, compute_uv=False).sum()) / np.sqrt((n - 1) * (m - 1))
    return float(np.sum((mu1 - mu2) ** 2) + tr1 + tr2 - 2.0 * cross)


def class_set_recall(scores: dict[str, float], classes: Sequence[str]) -> float:
    """Share of the K prompted classes among the judge's K highest-scoring classes."""
    if not classes:
        return float("nan")
    top = sorted(scores, key=scores.get, reverse=True)[: len(classes)]
    return len(set(top) & set(classes)) / len(classes)


def bootstrap_ci(values_by_scene: Sequence[Sequence[float]], n: int = 2000, seed: int = 0,
                 level: float = 0.95) -> dict[str, float]:
    """Mean over all values, with a percentile CI from resampling scenes (clusters)."""
    groups = [np.asarray(v, np.float64) for v in values_by_scene if len(v)]
    if not groups:
        return {"mean": float("nan"), "lo": float("nan"), "hi": float("nan"), "n": 0}
    flat = np.concatenate(groups)
    rng = np.random.default_rng(seed)
    sums = np.array([g.sum() for g in groups])
    counts = np.array([len(g) for g in groups])
    idx = rng.integers(0, len(groups), size=(n, len(groups)))
    means = sums[idx].sum(1) / counts[idx].sum(1)
    a = (1.0 - level) / 2.0
    return {"mean": float(flat.mean()), "lo": float(np.quantile(means, a)), "hi": float(np.quantile(means, 1 - a)),
            "n": int(len(flat))}


def bootstrap_statistic(n_items: int, statistic: Callable[[np.ndarray], float], n: int = 500, seed: int = 0,
                        level: float = 0.95) -> dict[str, float]:
    """CI of any statistic of a set of scenes (e.g. FD), from resampling scene indices."""
    rng = np.random.default_rng(seed)
    full = statistic(np.arange(n_items))
    stats = [statistic(rng.integers(0, n_items, n_items)) for _ in range(n)]
    a = (1.0 - level) / 2.0
    return {"mean": float(full), "lo": float(np.quantile(stats, a)), "hi": float(np.quantile(stats, 1 - a)),
            "n": int(n_items)}


def intervals_disjoint(better: dict[str, float], worse: dict[str, float], lower_is_better: bool = True) -> bool:
    """True when ``better``'s interval lies entirely on the good side of ``worse``'s."""
    if lower_is_better:
        return better["hi"] < worse["lo"]
    return better["lo"] > worse["hi"]


def is_monotone(values: Sequence[float], decreasing: bool = True) -> bool:
    v = list(values)
    return all((b <= a) if decreasing else (b >= a) for a, b in zip(v, v[1:]))
