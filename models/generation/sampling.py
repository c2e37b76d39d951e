"""The flow ODE: Euler integration from noise (t = 0) to data (t = 1).

Rectified-flow convention (MMAudio's): x_t = (1 − t)·x₀ + t·x₁ with x₀ ~ N(0, I), and the
network predicts the velocity dx/dt = x₁ − x₀. With N uniform steps on tᵢ = i/N:

    x_{i+1} = x_i + (t_{i+1} − t_i) · fn(t_i, x_i),      i = 0 … N − 1

The ODE loop knows nothing of guidance: ``fn`` already returns the guided velocity.
"""

from __future__ import annotations

from typing import Callable

import torch

VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def initial_noise(shape: tuple[int, ...], generator: torch.Generator, dtype: torch.dtype = torch.float32,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """x₀ ~ N(0, I) drawn on the CPU from ``generator`` (device-independent), then moved."""
    return torch.randn(shape, generator=generator, dtype=torch.float32).to(device=device, dtype=dtype)


def time_grid(num_steps: int, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> torch.Tensor:
    """``linspace(0, 1, N + 1)``: the uniform grid the official sampler uses."""
    if num_steps < 1:
        # Zero steps would hand back the starting noise as if it were audio.
        raise ValueError(f"num_steps must be an integer >= 1, got {num_steps!r}")
    return torch.linspace(0.0, 1.0, num_steps + 1, dtype=dtype, device=device)


@torch.no_grad()
def euler_sample(fn: VelocityFn, x0: torch.Tensor, num_steps: int) -> torch.Tensor:
    """Integrate dx/dt = fn(t, x) from t = 0 to 1 with ``num_steps`` Euler steps; returns x₁."""
    ts = time_grid(num_steps, x0.dtype, x0.device)
    x = x0
    for i in range(num_steps):
        x = x + (ts[i + 1] - ts[i]) * fn(ts[i], x)
    return x


def sample(fn: VelocityFn, shape: tuple[int, ...], num_steps: int, generator: torch.Generator,
           dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> torch.Tensor:
    """Draw x₀ from ``generator`` and integrate it to t = 1."""
    return euler_sample(fn, initial_noise(shape, generator, dtype, device), num_steps)
