"""The guidance model u_ψ of NAG: MMAudio + a ControlNet branch that reads an audio condition.

    u_ψ(x_t, t, V, ∅, x̃) = MMAudio with residuals r_j added to its audio stream, where

    h₀  = x + Z_in( P(x̃) )             x = the backbone's embedded noisy latent (audio_input_proj),
                                        P = conv input projection of the condition latent x̃
                                        (same codec and rate as x_t), Z_in zero-initialised
    h_i = B_i(h_{i−1}, e, RoPE)         i = 1 … M, audio-only transformer blocks with adaLN from the
                                        backbone's per-frame condition e = t_embed + global + sync
    r_j = Z_i(h_i),  i = ⌊j · M / depth⌋ + 1   for backbone block j = 0 … depth−1 (joint then fused),
                                        Z_i zero-initialised linear maps

Optionally (``pooled_cond``, off by default and for every branch trained before it) x̃ also
reaches every position through its time mean, since it is another stretch of time than x_t and
what it says about x_t (which sounds, their spectra) does not depend on position:

    e′  = e + Z_pool( mean_n P(x̃)_n )   Z_pool zero-initialised; e′ replaces e in the B_i

So with the default M = ⌈depth/2⌉, branch block i feeds backbone blocks 2i and 2i+1 (SD3.5
ControlNet's mapping: index ⌊j / (depth / M)⌋). At initialisation every Z is zero, hence r ≡ 0
and u_ψ ≡ u(x_t, t, V, ∅) exactly; only ψ = {P, Z_in, (Z_pool,) B, Z} is trained, the backbone stays
frozen and its checkpoint loads strictly (the branch has its own weights file). Text is null in
this branch: the caller passes conditions built from (V, empty string). The branch sees the video
only through e (timing via sync, content via the global clip vector), which keeps it cheap:
M audio-only blocks on B rows, no joint attention.
"""

from __future__ import annotations

import copy
import math

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from models.generation.mmaudio import ChannelLastConv1d, ConvMLP, MMAudio, MMDitSingleBlock, PreprocessedConditions


class AudioControlNet(ModelMixin, ConfigMixin):
    """ControlNet branch ψ for MMAudio (see module docstring)."""

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        latent_dim: int,
        hidden_dim: int,
        num_heads: int,
        backbone_depth: int,
        num_layers: int | None = None,
        mlp_ratio: float = 4.0,
        v2: bool = True,
        pooled_cond: bool = False,
    ) -> None:
        super().__init__()
        m = num_layers if num_layers is not None else math.ceil(backbone_depth / 2)
        if not 1 <= m <= backbone_depth:
            raise ValueError("num_layers must be in [1, backbone_depth]")
        self.register_to_config(num_layers=m)
        d = hidden_dim
        act = nn.SiLU if v2 else nn.SELU
        # Same layout as the backbone's audio_input_proj, so it can be initialised from it.
        self.cond_input_proj = nn.Sequential(
            ChannelLastConv1d(latent_dim, d, kernel_size=7, padding=3), act(), ConvMLP(d, 4 * d, 7, 3))
        self.cond_zero_proj = nn.Linear(d, d)
        # The time-pooled path (off for branches trained without it, so their weights load as saved).
        self.cond_pool_proj = nn.Linear(d, d) if pooled_cond else None
        self.blocks = nn.ModuleList(
            [MMDitSingleBlock(d, num_heads, mlp_ratio, kernel_size=3, padding=1) for _ in range(m)])
        self.controlnet_blocks = nn.ModuleList([nn.Linear(d, d) for _ in range(m)])
        for mod in self.modules():
            if isinstance(mod, nn.Linear):
                nn.init.xavier_uniform_(mod.weight)
                if mod.bias is not None:
                    nn.init.zeros_(mod.bias)
        self.zero_init_projections()

    def zero_init_projections(self) -> None:
        """The ControlNet identity at start: input and output projections exactly zero."""
        pool = [self.cond_pool_proj] if self.cond_pool_proj is not None else []
        for lin in [self.cond_zero_proj, *pool, *self.controlnet_blocks]:
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    @classmethod
    def from_transformer(cls, transformer: MMAudio, num_layers: int | None = None,
                         init_from_backbone: bool = True, pooled_cond: bool = False) -> "AudioControlNet":
        """A branch sized for ``transformer``; optionally its blocks (and input projection) start as
        copies of the backbone's audio blocks (branch block i ← backbone block ⌊i · depth / M⌋, the
        joint blocks' latent half or a fused block: same shapes)."""
        c = transformer.config
        net = cls(latent_dim=c.latent_dim, hidden_dim=c.hidden_dim, num_heads=c.num_heads,
                  backbone_depth=c.depth, num_layers=num_layers, mlp_ratio=c.mlp_ratio, v2=c.v2,
                  pooled_cond=pooled_cond)
        if init_from_backbone:
            audio_blocks = [jb.latent_block for jb in transformer.joint_blocks] + list(transformer.fused_blocks)
            m = net.config.num_layers
            for i, blk in enumerate(net.blocks):
                blk.load_state_dict(audio_blocks[(i * c.depth) // m].state_dict())
            net.cond_input_proj.load_state_dict(copy.deepcopy(transformer.audio_input_proj.state_dict()))
        net.zero_init_projections()
        net = net.to(transformer.device)
        return net if transformer.dtype == torch.float32 else net.to(transformer.dtype)

    def block_for(self, j: int) -> int:
        """Branch block whose output is added after backbone block ``j``."""
        return (j * self.config.num_layers) // self.config.backbone_depth

    def residuals(self, x: torch.Tensor, extended_c: torch.Tensor, cond_latent: torch.Tensor,
                  latent_rot: torch.Tensor) -> list[torch.Tensor]:
        """Per-backbone-block residuals ``[depth × [B, N, D]]`` from embedded latent ``x [B, N, D]``."""
        if cond_latent.shape[:2] != x.shape[:2]:
            raise ValueError(f"condition latent {tuple(cond_latent.shape)} must match x_t's batch and length {tuple(x.shape[:2])}")
        p = self.cond_input_proj(cond_latent.to(x.dtype))
        h = x + self.cond_zero_proj(p)
        if self.cond_pool_proj is not None:
            # x̃ is another stretch of time than x_t: what it says about x_t (which sounds, their
            # spectra) is time-invariant, so its time mean modulates every position's adaLN.
            extended_c = extended_c + self.cond_pool_proj(p.mean(1, keepdim=True))
        outs = []
        for blk, zero in zip(self.blocks, self.controlnet_blocks):
            h = blk(h, extended_c, latent_rot)
            outs.append(zero(h))
        return [outs[self.block_for(j)] for j in range(self.config.backbone_depth)]

    def predict_flow(self, transformer: MMAudio, latent: torch.Tensor, t: torch.Tensor,
                     conditions: PreprocessedConditions, cond_latent: torch.Tensor) -> torch.Tensor:
        """u_ψ on a batch whose LAST ``cond_latent.shape[0]`` rows are the guided ones.

        With ``cond_latent`` of the full batch this is plain u_ψ; with a smaller batch only those
        last rows get the branch (one batched NAG step: [null; cond; ψ]), the others are u."""
        x, global_c, extended_c = transformer.embed(latent, t, conditions)
        b = cond_latent.shape[0]
        latent_rot, _ = transformer.rotations(x.shape[1], conditions.clip_f.shape[1], x.device)
        e = extended_c[-b:] if extended_c.shape[0] == x.shape[0] else extended_c
        res = self.residuals(x[-b:], e, cond_latent, latent_rot)
        return transformer.run_blocks(x, global_c, extended_c, conditions, res)

    def forward(self, transformer: MMAudio, latent: torch.Tensor, t: torch.Tensor,
                conditions: PreprocessedConditions, cond_latent: torch.Tensor) -> torch.Tensor:
        return self.predict_flow(transformer, latent, t, conditions, cond_latent)
