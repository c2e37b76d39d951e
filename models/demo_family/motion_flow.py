"""Signed motion per cell: a Lucas–Kanade velocity estimate for each cell of a coarse grid.

Why: unsigned motion energy (|Y_t − Y_{t−1}| pooled over a cell) cannot see the moments most
impacts happen at. A fist that swings to a door and back, a foot that comes down as the other
goes up, a bell at the end of its swing: the motion goes on through the impact and only its
*direction* changes. A signed velocity turns each of those into a zero crossing or a step,
which a convolution over a few frames reads directly.

Luma Y (Rec. 601 weights) of each frame is area-averaged to R × R (R = 32) and smoothed by a
3 × 3 box. With the spatial gradients I_x, I_y (central differences, averaged over frames
t − 1 and t) and the temporal difference I_t = Y_t − Y_{t−1}, the brightness-constancy
equation I_x v_x + I_y v_y + I_t = 0 is solved in the least-squares sense over the pixels of
each of the G × G cells (Lucas & Kanade, 1981):

    [ ΣI_x²+λ   ΣI_xI_y ] [v_x]     [ ΣI_xI_t ]
    [ ΣI_xI_y   ΣI_y²+λ ] [v_y] = − [ ΣI_yI_t ]

(sums are cell means; λ = 1e-4 keeps flat cells at v = 0 instead of dividing by ~0). v is in
pixels of the R-grid per frame; frame 0 has v = 0. For the network the components are
compressed symmetrically, sign(v) · log(1 + g·|v|), so a slow drift and a fast swing both stay
near unit scale.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FLOW_RES = 32
FLOW_REG = 1e-4


def cell_velocity(luma: torch.Tensor, grid: int, res: int = FLOW_RES, reg: float = FLOW_REG) -> torch.Tensor:
    """Luma ``[B, T, H, W]`` in [0, 1] → per-cell velocity ``[B, T, 2·grid²]`` (all v_x, then all v_y)."""
    b, t = luma.shape[:2]
    s = F.adaptive_avg_pool2d(luma.reshape(b * t, 1, *luma.shape[-2:]), res)
    s = F.avg_pool2d(F.pad(s, (1, 1, 1, 1), mode="replicate"), 3, 1).reshape(b, t, res, res)
    ix = torch.zeros_like(s)
    iy = torch.zeros_like(s)
    ix[..., 1:-1] = (s[..., 2:] - s[..., :-2]) / 2
    iy[..., 1:-1, :] = (s[..., 2:, :] - s[..., :-2, :]) / 2
    gx, gy = ix.clone(), iy.clone()
    gx[:, 1:] = (ix[:, 1:] + ix[:, :-1]) / 2
    gy[:, 1:] = (iy[:, 1:] + iy[:, :-1]) / 2
    it = torch.zeros_like(s)
    it[:, 1:] = s[:, 1:] - s[:, :-1]

    def pool(z: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(z.reshape(b * t, 1, res, res), grid).reshape(b, t, grid * grid)

    a, c, off = pool(gx * gx) + reg, pool(gy * gy) + reg, pool(gx * gy)
    p, q = pool(gx * it), pool(gy * it)
    det = a * c - off * off
    vx = -(c * p - off * q) / det
    vy = -(a * q - off * p) / det
    return torch.cat([vx, vy], dim=-1)


def compress_signed(v: torch.Tensor, gain: float) -> torch.Tensor:
    """sign(v) · log(1 + gain·|v|)."""
    return torch.sign(v) * torch.log1p(gain * v.abs())
