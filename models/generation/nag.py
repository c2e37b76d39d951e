"""Negative Audio Guidance (NAG): the guidance rule, as a pure function of three velocities.

Hayakawa, Ishii, Shibuya, Mitsufuji, "Step-by-Step Video-to-Audio Synthesis via Negative Audio
Guidance", arXiv 2506.20995, eq. for ũ:

    ũ = u(x_t,t,∅,∅) + α·[u(x_t,t,V,C) − u(x_t,t,∅,∅)] + β·[u(x_t,t,V,C) − u_ψ(x_t,t,V,∅,x̃)]
      = (1 − α)·u_null + (α + β)·u_cond − β·u_neg

Derivation sketch (concept negation, as in composable diffusion). Write s(·) = ∇ₓ log p_t(·)
for the scores of the conditionals. The guided target adds to the CFG score a term that favours
C and disfavours "explains the existing audio x̃", both given the same video:

    s̃ = s(x) + α[s(x|V,C) − s(x)] + β[s(x|V,C) − s(x|V,x̃)]

and by Bayes, s(x|V,C) − s(x|V,x̃) = ∇log p(C|x,V) − ∇log p(x̃|x,V): the video term s(x|V)
cancels, leaving "more C, less x̃" (the paper's p(x|V,C,¬E(x̃)) ∝ … p(E(x̃)|x)⁻¹ factor).
For the linear path x_t = (1−t)x₀ + t·x₁ the velocity is affine in the score at fixed t,
u = (x + (1−t)·s)/t, and the weights here sum to one ((1−α) + (α+β) − β = 1), so the same
combination of velocities is the velocity of s̃ — no score conversion needed. u_ψ stands in for
u(x|V,x̃) (text null, audio as condition). β = 0 recovers MMAudio's classifier-free guidance
α·u_cond + (1 − α)·u_null exactly; α = 1, β = 0 returns u_cond.
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
