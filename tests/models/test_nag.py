"""The NAG rule: algebraic properties (hypothesis) and the β = 0 case against official CFG."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from models.generation.nag import cfg_velocity, nag_velocity

from tests.models.helpers import single_thread  # noqa: F401  (autouse)

from tests.mmaudio_fixtures import mmaudio_fixtures  # noqa: E402

FIX = mmaudio_fixtures()
coef = st.floats(-10, 10, allow_nan=False, allow_infinity=False)
seeds = st.integers(0, 2**31 - 1)


def _three(seed: int, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(2, 5, 3, generator=g, dtype=dtype) for _ in range(3))  # type: ignore[return-value]


@settings(max_examples=60, deadline=None)
@given(seeds, coef, coef)
def test_matches_float64_reference(seed: int, alpha: float, beta: float) -> None:
    n, c, g = _three(seed, torch.float64)
    ref = (1 - alpha) * n + (alpha + beta) * c - beta * g  # the paper's rearranged form
    out = nag_velocity(n.float(), c.float(), g.float(), alpha, beta).double()
    assert torch.allclose(out, ref, atol=1e-4 * (1 + abs(alpha) + abs(beta)), rtol=1e-5)


@settings(max_examples=40, deadline=None)
@given(seeds, seeds, coef, coef, coef)
def test_linear_in_the_velocities(s1: int, s2: int, alpha: float, beta: float, lam: float) -> None:
    a, b = _three(s1, torch.float64), _three(s2, torch.float64)
    mix = tuple(x + lam * y for x, y in zip(a, b))
    lhs = nag_velocity(*mix, alpha, beta)
    rhs = nag_velocity(*a, alpha, beta) + lam * nag_velocity(*b, alpha, beta)
    assert torch.allclose(lhs, rhs, atol=1e-9 * (1 + abs(lam)) * (1 + abs(alpha) + abs(beta)))


@settings(max_examples=40, deadline=None)
@given(seeds, coef)
def test_beta_zero_is_cfg_and_ignores_negative(seed: int, alpha: float) -> None:
    n, c, g = _three(seed)
    out = nag_velocity(n, c, g, alpha, 0.0)
    assert torch.equal(out, nag_velocity(n, c, None, alpha, 0.0))
    assert torch.allclose(out, alpha * c + (1 - alpha) * n, atol=1e-5 * (1 + abs(alpha)))


@settings(max_examples=30, deadline=None)
@given(seeds)
def test_alpha_one_beta_zero_is_conditional(seed: int) -> None:
    n, c, g = _three(seed)
    assert torch.allclose(nag_velocity(n, c, g, 1.0, 0.0), c, atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(seeds, coef, coef)
def test_negative_equal_to_conditional_cancels(seed: int, alpha: float, beta: float) -> None:
    n, c, _ = _three(seed, torch.float64)
    assert torch.allclose(nag_velocity(n, c, c, alpha, beta), cfg_velocity(n, c, alpha))


def test_beta_needs_negative() -> None:
    n, c, _ = _three(0)
    with pytest.raises(ValueError):
        nag_velocity(n, c, None, 4.5, 1.5)


@pytest.mark.skipif(not FIX.is_dir(), reason="fixtures not present")
def test_beta_zero_reproduces_official_cfg_sample() -> None:
    from safetensors.torch import load_file

    from models.generation.mmaudio import MMAudio
    from models.generation.sampling import euler_sample

    cfg = json.loads((FIX / "mmaudio_tiny_v2.json").read_text())
    net = MMAudio.load_official(FIX / "mmaudio_tiny_v2.safetensors", cfg)
    io = load_file(str(FIX / "mmaudio_tiny_v2_io.safetensors"))
    cond = net.preprocess_conditions(io["clip_f"], io["sync_f"], io["text_f"])
    null = net.get_empty_conditions(2)
    # u_neg = an unrelated velocity: with β = 0 it must not matter at all.
    junk = torch.full_like(io["x0"], 1e3)

    def fn(t, x):
        tt = t.expand(2)
        return nag_velocity(net.predict_flow(x, tt, null), net.predict_flow(x, tt, cond), junk, 4.5, 0.0)

    assert (euler_sample(fn, io["x0"], 4) - io["x1"]).abs().max() < 1e-3
