"""Statistics of the evaluation against independent references (scipy, brute force)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import linalg

from models.evaluation.metrics import (bootstrap_ci, bootstrap_statistic, class_set_recall, cosine100, frechet_distance,
                                 intervals_disjoint, is_monotone)


def _fd_reference(x: np.ndarray, y: np.ndarray) -> float:
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = np.real(linalg.sqrtm(s1 @ s2))
    return float(np.sum((x.mean(0) - y.mean(0)) ** 2) + np.trace(s1 + s2 - 2 * covmean))


@pytest.mark.parametrize("n,m,d", [(40, 50, 6), (12, 9, 32), (30, 30, 30)])
def test_frechet_matches_matrix_square_root(n: int, m: int, d: int) -> None:
    rng = np.random.default_rng(n * d)
    x = rng.normal(size=(n, d))
    y = rng.normal(0.5, 1.7, size=(m, d)) @ rng.normal(size=(d, d)) / np.sqrt(d)
    assert frechet_distance(x, y) == pytest.approx(_fd_reference(x, y), rel=1e-6, abs=1e-6)


def test_frechet_of_a_set_with_itself_is_zero_and_grows_with_shift() -> None:
    x = np.random.default_rng(0).normal(size=(25, 8))
    assert abs(frechet_distance(x, x)) < 1e-8
    assert frechet_distance(x, x + 1.0) == pytest.approx(8.0, rel=1e-6)  # ‖Δμ‖² = d, same covariance
    with pytest.raises(ValueError):
        frechet_distance(x[:1], x)


def test_cosine_and_recall() -> None:
    assert cosine100(np.array([1.0, 0.0]), np.array([2.0, 0.0])) == pytest.approx(100.0)
    assert cosine100(np.array([1.0, 0.0]), np.array([0.0, 3.0])) == pytest.approx(0.0)
    assert cosine100(np.zeros(2), np.ones(2)) == 0.0
    scores = {"dog": 0.9, "rain": 0.1, "bell": 0.5, "fire": 0.6}
    assert class_set_recall(scores, ["dog", "bell"]) == 0.5  # top-2 is dog, fire
    assert class_set_recall(scores, ["dog", "fire"]) == 1.0


def test_bootstrap_resamples_scenes_not_tracks() -> None:
    # One scene with many identical values must not shrink the interval as if they were independent.
    one_big = [[1.0] * 50, [0.0], [0.0], [0.0]]
    ci = bootstrap_ci(one_big, n=4000)
    assert ci["mean"] == pytest.approx(50 / 53)
    assert ci["lo"] == pytest.approx(0.0) and ci["hi"] > 0.9  # as wide as four scenes allow
    assert bootstrap_ci([])["n"] == 0


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-5, 5, allow_nan=False), min_size=3, max_size=30), st.integers(0, 10))
def test_bootstrap_interval_contains_the_mean(values: list[float], seed: int) -> None:
    ci = bootstrap_ci([[v] for v in values], n=300, seed=seed)
    assert ci["lo"] - 1e-9 <= ci["mean"] <= ci["hi"] + 1e-9
    assert min(values) - 1e-9 <= ci["lo"] and ci["hi"] <= max(values) + 1e-9


def test_coverage_of_the_95_percent_interval() -> None:
    """Scene means ~ N(0, 1), 30 scenes: the interval contains the true mean ≈ 95 % of the time."""
    rng = np.random.default_rng(1)
    hits = 0
    trials = 200
    for t in range(trials):
        ci = bootstrap_ci([[v] for v in rng.normal(size=30)], n=500, seed=t)
        hits += ci["lo"] <= 0.0 <= ci["hi"]
    assert 0.88 <= hits / trials <= 0.99


def test_statistic_bootstrap_and_gate_helpers() -> None:
    x = np.random.default_rng(2).normal(size=(20, 4))
    ci = bootstrap_statistic(20, lambda idx: float(x[idx].mean()), n=200)
    assert ci["lo"] <= ci["mean"] <= ci["hi"]
    a, b = {"mean": 1.0, "lo": 0.5, "hi": 1.5}, {"mean": 3.0, "lo": 2.0, "hi": 4.0}
    assert intervals_disjoint(a, b) and not intervals_disjoint(b, a)
    assert intervals_disjoint(b, a, lower_is_better=False)
    assert not intervals_disjoint(a, {"mean": 2, "lo": 1.4, "hi": 3})
    assert is_monotone([3, 2, 2, 1]) and not is_monotone([3, 1, 2])
