"""Negative Audio Guidance (NAG): the guidance rule, as a pure function of three velocities.

Hayakawa, Ishii, Shibuya, Mitsufuji, "Step-by-Step Video-to-Audio Synthesis via Negative Audio
Guidance", arXiv 2506.20995, eq. for ũ:

    ũ = u(x_t,t,∅,∅) + α·[u(x_t,t,V,C) − u(x_t,t,∅,∅)] + β·[u(x_t,t,V,C) − u_ψ(x_t,t,V,∅,x̃)]
      = (1 − α)·u_null + (α + β)·u_cond − β·u_neg

Derivation sketch (concept negation, as in composable diffusion): we want samples of
p(x | V, C, ¬E(x̃)) ∝ p(x) · p(V, C | x)^α · p(E(x̃) | x)^(−β), i.e. the prompted sound while
penalising "explains the existing audio x̃". Taking ∇ log and using Bayes per factor,

    ∇log p(x) + α[∇log p(x|V,C) − ∇log p(x)] − β[∇log p(x|V,x̃) − ∇log p(x|V,C)]

(the negative term is measured relative to the conditional model so video evidence cancels);
for flow matching with a Gaussian path the velocity is affine in the score at fixed t, so the
same combination of velocities is the guided velocity. β = 0 recovers MMAudio's classifier-free
guidance α·u_cond + (1 − α)·u_null exactly; α = 1, β = 0 returns u_cond.
"""

from __future__ import annotations

import torch


def nag_velocity(u_null: torch.Tensor, u_cond: torch.Tensor, u_neg: torch.Tensor | None,
                 alpha: float, beta: float) -> torch.Tensor:
    """ũ = u_null + α(u_cond − u_null) + β(u_cond − u_neg); ``u_neg`` may be None when β = 0."""
    out = u_null + alpha * (u_cond - u_null)
    if beta == 0.0:
        # Plain CFG (track 1, or a disabled branch): no third evaluation needed.
        return out
    if u_neg is None:
        raise ValueError("beta != 0 needs the guidance-model velocity u_neg")
    return out + beta * (u_cond - u_neg)


def cfg_velocity(u_null: torch.Tensor, u_cond: torch.Tensor, alpha: float) -> torch.Tensor:
    """Classifier-free guidance, the β = 0 case of ``nag_velocity``."""
    return nag_velocity(u_null, u_cond, None, alpha, 0.0)
