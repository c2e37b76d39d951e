"""The flow-matching objective (rectified flow, MMAudio's convention: t = 0 is noise, t = 1 is data).

For a data latent x₁, noise x₀ ~ N(0, I) and t drawn log-normally, t = σ(n), n ~ N(0, 1) (the
logit-normal "log-normal t" of SD3/MMAudio, which puts most samples at mid t where the velocity
is hardest),

    x_t = (1 − t) x₀ + t x₁,        L(θ) = E ‖ u_θ(x_t, t, V, C) − (x₁ − x₀) ‖²

Classifier-free guidance needs the unconditional velocity from the same network, so training
replaces a random subset of the examples' conditions by the network's learned null features
(``null_fill``).
"""

from __future__ import annotations

from typing import Callable

import torch


def sample_log_normal_t(n: int, gen: torch.Generator, mean: float = 0.0) -> torch.Tensor:
    """t = sigmoid(N(mean, 1)): logit-normal time, denser at mid t (mean 0) or shifted (SD3's
    "mode" shift: mean < 0 puts more samples near the noise end)."""
    return torch.sigmoid(torch.randn(n, generator=gen) + mean)


def null_fill(x: torch.Tensor, drop: torch.Tensor, null: torch.Tensor) -> torch.Tensor:
    """Replace rows ``drop`` of ``x [B, ...]`` by the (broadcast) null feature."""
    if not bool(drop.any()):
        return x
    mask = drop.view(-1, *([1] * (x.dim() - 1))).to(x.dtype)
    return x * (1 - mask) + null.to(x.dtype).expand_as(x) * mask


def flow_matching_loss(
    velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x1: torch.Tensor, gen: torch.Generator,
    t_mean: float = 0.0,
) -> torch.Tensor:
    """‖u(x_t, t) − (x₁ − x₀)‖² with x_t = (1 − t)x₀ + t x₁ and logit-normal t (location ``t_mean``)."""
    x0 = torch.randn(x1.shape, generator=gen)
    t = sample_log_normal_t(x1.shape[0], gen, t_mean)
    xt = (1 - t[:, None, None]) * x0 + t[:, None, None] * x1
    v = velocity(xt, t)
    return torch.nn.functional.mse_loss(v.float(), (x1 - x0).float())
