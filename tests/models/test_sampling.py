"""Euler flow sampler: exactness on linear flows, determinism, and the official x1."""

from __future__ import annotations

import pytest
import torch

from models.generation.sampling import euler_sample, initial_noise, sample, time_grid
from tests.models.helpers import single_thread  # noqa: F401  (autouse)


def test_constant_velocity_is_exact() -> None:
    x0 = torch.randn(2, 7, 3, generator=torch.Generator().manual_seed(1))
    target = torch.randn(2, 7, 3, generator=torch.Generator().manual_seed(2))
    # The straight-line flow of rectified flow: u = x1 − x0 independent of t.
    out = euler_sample(lambda t, x: target - x0, x0, 5)
    assert torch.allclose(out, target, atol=1e-6)


def test_euler_is_first_order_on_dx_eq_x() -> None:
    x0 = torch.ones(1)
    for n in (1, 4, 10):
        assert torch.allclose(euler_sample(lambda t, x: x, x0, n), torch.tensor([(1 + 1 / n) ** n]))


def test_time_grid_and_time_dependence() -> None:
    assert torch.equal(time_grid(4), torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]))
    seen = []
    euler_sample(lambda t, x: seen.append(float(t)) or torch.zeros_like(x), torch.zeros(1), 4)
    assert seen == [0.0, 0.25, 0.5, 0.75]


def test_generator_determinism() -> None:
    fn = lambda t, x: -x  # noqa: E731
    a = sample(fn, (2, 4, 3), 3, torch.Generator().manual_seed(7))
    b = sample(fn, (2, 4, 3), 3, torch.Generator().manual_seed(7))
    c = sample(fn, (2, 4, 3), 3, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(initial_noise((3,), torch.Generator().manual_seed(0)), torch.randn(3, generator=torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("steps", [0, -1, -25])
def test_fewer_than_one_step_is_refused(steps: int) -> None:
    """0 steps would return the starting noise as the sample: refuse, before any evaluation."""
    calls: list[float] = []

    def fn(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        calls.append(float(t))
        return x

    with pytest.raises(ValueError, match=rf"num_steps must be an integer >= 1, got {steps}"):
        euler_sample(fn, torch.ones(3), steps)
    with pytest.raises(ValueError, match="num_steps"):
        sample(fn, (3,), steps, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="num_steps"):
        time_grid(steps)
    assert calls == []


def test_one_step_is_one_full_euler_step() -> None:
    x0 = torch.tensor([2.0, -1.0])
    seen: list[float] = []
    out = euler_sample(lambda t, x: seen.append(float(t)) or 3 * x, x0, 1)
    assert seen == [0.0] and torch.equal(out, x0 + 3 * x0)
