"""The MMAudio multimodal diffusion transformer (Cheng et al., CVPR 2025), as a diffusers model.

Written from the architecture description; state-dict keys are the official ones, so official
checkpoints (``mmaudio_small_16k.pth`` … ``mmaudio_large_44k_v2.pth``) load strictly, and
the parity fixtures in ``tests/fixtures/mmaudio`` (outputs of the official code) agree to ~1e-6
in float32.

Inputs per window of d seconds: noisy latent x_t ``[B, N, latent_dim]`` (N = latent frames),
clip features ``[B, Nc, clip_dim]`` (8 fps), sync features ``[B, Ns, sync_dim]`` (24/s, in
segments of 8), text features ``[B, L, text_dim]`` and flow time t ∈ [0, 1] (0 = noise,
1 = data). Output: the velocity u ≈ x₁ − x₀, ``[B, N, latent_dim]``.

Computation (D = hidden_dim, h = D / num_heads):

    conditioning (once per track, ``preprocess_conditions``):
        s   = sync + sync_pos_emb[position within its 8-frame segment]
        c,s,w = clip_input_proj(clip), sync_input_proj(s), text_input_proj(text)     (→ D)
        s   = nearest-exact upsample of s along time to N                (per-frame condition)
        g₀  = clip_cond_proj(mean_time c) + text_cond_proj(mean_time w)              (global)
    per step (``predict_flow``):
        x   = audio_input_proj(x_t)
        g   = t_embed(t) + global_cond_mlp(g₀)          [B, 1, D]  (adaLN input of clip/text)
        e   = g + s                                     [B, N, D]  (adaLN input of the audio)
        joint blocks (depth − fused_depth): each stream has its own adaLN-modulated
            pre-norm, q/k/v with RMS-normed q, k; RoPE on audio and clip (clip positions scaled
            by N / Nc so both streams share a time axis); ONE attention over the concatenated
            [audio; clip; text] tokens; then per-stream gated output conv + gated SwiGLU. The
            last joint block updates only the audio (clip/text are "pre-only").
        fused blocks (fused_depth): the same block on the audio stream alone, adaLN from e.
        u   = final_layer(x, g) = conv7(LN(x)·(1 + scale(g)) + shift(g))   (global c only)

adaLN:  y = LN(x) · (1 + scale) + shift (LN without affine, ε = 1e-5), residual
x ← x + gate · f(y), with (shift, scale, gate, …) = Linear(SiLU(cond)). SwiGLU: W₂(SiLU(W₁x) ⊙ W₃x), hidden = 256·⌈(2/3)·4D / 256⌉,
as 1-D convolutions (kernel 3, or 7 in the audio input projection) on audio/clip streams.
RoPE: pairs (x₂ᵢ, x₂ᵢ₊₁) of each head rotated by angle p · θᵢ, θᵢ = 10000^(−2i/h).
Time embedding: [cos(t·f), sin(t·f)], f_i = (10000/max_period) · 10000^(−2i/F), then an MLP;
v1 F = 256, max_period = 10000; v2 F = D, max_period = 1.

Window lengths other than the configured 8 s work: sequence lengths are read from the inputs,
the sync stream is upsampled to the latent length and the RoPE tables are rebuilt for them.

ControlNet hook: ``predict_flow(..., latent_residuals=[r_0 … r_{depth−1}])`` adds r_j to the
audio stream after block j (joint blocks first, then fused); a residual of batch b < B applies
to the LAST b rows, so a guidance branch can run on one slice of a batched forward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

SYNC_SEGMENT = 8  # Synchformer emits 8 feature frames per video segment; sync_pos_emb indexes them.

# Official presets (constructor arguments of the official class); `tiny` is this project's.
PRESETS: dict[str, dict[str, Any]] = {
    "small_16k": dict(latent_dim=20, clip_dim=1024, sync_dim=768, text_dim=1024, hidden_dim=448, depth=12,
                      fused_depth=8, num_heads=7, latent_seq_len=250, clip_seq_len=64, sync_seq_len=192,
                      text_seq_len=77, v2=False),
    "small_44k": dict(latent_dim=40, clip_dim=1024, sync_dim=768, text_dim=1024, hidden_dim=448, depth=12,
                      fused_depth=8, num_heads=7, latent_seq_len=345, clip_seq_len=64, sync_seq_len=192,
                      text_seq_len=77, v2=False),
    "medium_44k": dict(latent_dim=40, clip_dim=1024, sync_dim=768, text_dim=1024, hidden_dim=896, depth=12,
                       fused_depth=8, num_heads=14, latent_seq_len=345, clip_seq_len=64, sync_seq_len=192,
                       text_seq_len=77, v2=False),
    "large_44k": dict(latent_dim=40, clip_dim=1024, sync_dim=768, text_dim=1024, hidden_dim=896, depth=21,
                      fused_depth=14, num_heads=14, latent_seq_len=345, clip_seq_len=64, sync_seq_len=192,
                      text_seq_len=77, v2=False),
    "large_44k_v2": dict(latent_dim=40, clip_dim=1024, sync_dim=768, text_dim=1024, hidden_dim=896, depth=21,
                         fused_depth=14, num_heads=14, latent_seq_len=345, clip_seq_len=64, sync_seq_len=192,
                         text_seq_len=77, v2=True),
    "tiny": dict(latent_dim=64, clip_dim=64, sync_dim=32, text_dim=64, hidden_dim=128, depth=4, fused_depth=2,
                 num_heads=2, latent_seq_len=250, clip_seq_len=64, sync_seq_len=192, text_seq_len=16, v2=True),
}

# Keys some official checkpoint files carry that are derived, not learned (recomputed here).
DERIVED_KEYS = ("t_embed.freqs", "latent_rot", "clip_rot")


# ---------------------------------------------------------------------------- building blocks


class ChannelLastConv1d(nn.Conv1d):
    """Conv1d over time for ``[B, T, C]`` tensors (the transformer's layout)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


def _swiglu_hidden(hidden: int, multiple_of: int = 256) -> int:
    # LLaMA-style sizing: 2/3 of the nominal width, rounded up to a multiple of 256.
    h = int(2 * hidden / 3)
    return multiple_of * ((h + multiple_of - 1) // multiple_of)


class MLP(nn.Module):
    """SwiGLU feed-forward: W₂(SiLU(W₁x) ⊙ W₃x), bias-free."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        h = _swiglu_hidden(hidden)
        self.w1 = nn.Linear(dim, h, bias=False)
        self.w2 = nn.Linear(h, dim, bias=False)
        self.w3 = nn.Linear(dim, h, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class ConvMLP(nn.Module):
    """SwiGLU with temporal convolutions in place of the three linear maps."""

    def __init__(self, dim: int, hidden: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        h = _swiglu_hidden(hidden)
        self.w1 = ChannelLastConv1d(dim, h, kernel_size, padding=padding, bias=False)
        self.w2 = ChannelLastConv1d(h, dim, kernel_size, padding=padding, bias=False)
        self.w3 = ChannelLastConv1d(dim, h, kernel_size, padding=padding, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class RMSNorm(nn.Module):
    """x / sqrt(mean(x²) + ε) · w (per head, for q and k)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Weight cast to the activation dtype keeps the fused kernel under bf16 autocast.
        return F.rms_norm(x, (x.shape[-1],), self.weight.to(x.dtype), self.eps)


def rope_table(length: int, head_dim: int, freq_scaling: float = 1.0, theta: float = 10000.0,
               device: torch.device | None = None) -> torch.Tensor:
    """``[1, 1, length, head_dim/2, 2]`` of (cos, sin) of p·θᵢ·scaling, θᵢ = theta^(−2i/head_dim)."""
    pos = torch.arange(length, dtype=torch.float32, device=device)
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim))
    ang = pos[:, None] * (inv * freq_scaling)[None, :]
    return torch.stack([ang.cos(), ang.sin()], dim=-1)[None, None]


def apply_rope(x: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent pairs of ``x [B, H, N, h]``: (a, b) → (a cos − b sin, a sin + b cos), in fp32."""
    xf = x.float().reshape(*x.shape[:-1], -1, 2)
    a, b = xf[..., 0], xf[..., 1]
    cos, sin = rot[..., 0], rot[..., 1]
    out = torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1)
    return out.reshape(x.shape).to(x.dtype)


class SelfAttention(nn.Module):
    """q, k, v projection with per-head RMS-normed q and k (the attention itself is joint)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.q_norm = RMSNorm(dim // num_heads)
        self.k_norm = RMSNorm(dim // num_heads)

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, n, d = x.shape
        # The official layout interleaves q/k/v innermost: feature index = (head, channel, which).
        qkv = self.qkv(x).view(b, n, self.num_heads, d // self.num_heads, 3).permute(4, 0, 2, 1, 3)
        return self.q_norm(qkv[0]), self.k_norm(qkv[1]), qkv[2]


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q kᵀ / √h) v over ``[B, H, N, h]``, heads merged back to ``[B, N, H·h]``."""
    out = F.scaled_dot_product_attention(q, k, v)
    return out.transpose(1, 2).flatten(2)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class MMDitSingleBlock(nn.Module):
    """One stream's half of a block: adaLN pre-norm → qkv, and (unless pre-only) the gated output
    projection + gated SwiGLU after the attention. Used alone (fused blocks) or inside JointBlock."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, pre_only: bool = False,
                 kernel_size: int = 7, padding: int = 3) -> None:
        super().__init__()
        self.pre_only = pre_only
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False)
        self.attn = SelfAttention(dim, num_heads)
        if pre_only:
            self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim, bias=True))
        else:
            if kernel_size == 1:
                self.linear1 = nn.Linear(dim, dim)
                self.ffn = MLP(dim, int(dim * mlp_ratio))
            else:
                self.linear1 = ChannelLastConv1d(dim, dim, kernel_size, padding=padding)
                self.ffn = ConvMLP(dim, int(dim * mlp_ratio), kernel_size=kernel_size, padding=padding)
            self.norm2 = nn.LayerNorm(dim, elementwise_affine=False)
            self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim, bias=True))

    def pre_attention(self, x: torch.Tensor, c: torch.Tensor, rot: torch.Tensor | None
                      ) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], list[torch.Tensor] | None]:
        mod = self.adaLN_modulation(c)
        if self.pre_only:
            shift, scale = mod.chunk(2, dim=-1)
            rest = None
        else:
            shift, scale, *rest = mod.chunk(6, dim=-1)
        q, k, v = self.attn.project(modulate(self.norm1(x), shift, scale))
        if rot is not None:
            q, k = apply_rope(q, rot), apply_rope(k, rot)
        return (q, k, v), rest

    def post_attention(self, x: torch.Tensor, attn_out: torch.Tensor, rest: list[torch.Tensor] | None) -> torch.Tensor:
        if self.pre_only:
            return x
        gate_msa, shift_mlp, scale_mlp, gate_mlp = rest
        x = x + self.linear1(attn_out) * gate_msa
        return x + self.ffn(modulate(self.norm2(x), shift_mlp, scale_mlp)) * gate_mlp

    def forward(self, x: torch.Tensor, c: torch.Tensor, rot: torch.Tensor | None) -> torch.Tensor:
        qkv, rest = self.pre_attention(x, c, rot)
        return self.post_attention(x, attention(*qkv), rest)


class JointBlock(nn.Module):
    """Audio, clip and text streams attend jointly (one softmax over all their tokens)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, pre_only: bool = False) -> None:
        super().__init__()
        self.latent_block = MMDitSingleBlock(dim, num_heads, mlp_ratio, False, kernel_size=3, padding=1)
        self.clip_block = MMDitSingleBlock(dim, num_heads, mlp_ratio, pre_only, kernel_size=3, padding=1)
        self.text_block = MMDitSingleBlock(dim, num_heads, mlp_ratio, pre_only, kernel_size=1, padding=0)

    def forward(self, x: torch.Tensor, clip: torch.Tensor, text: torch.Tensor, global_c: torch.Tensor,
                extended_c: torch.Tensor, latent_rot: torch.Tensor, clip_rot: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        xq, xr = self.latent_block.pre_attention(x, extended_c, latent_rot)
        cq, cr = self.clip_block.pre_attention(clip, global_c, clip_rot)
        tq, tr = self.text_block.pre_attention(text, global_c, None)
        n, nc = x.shape[1], clip.shape[1]
        out = attention(*(torch.cat([xq[i], cq[i], tq[i]], dim=2) for i in range(3)))
        x = self.latent_block.post_attention(x, out[:, :n], xr)
        if not self.clip_block.pre_only:
            clip = self.clip_block.post_attention(clip, out[:, n:n + nc], cr)
            text = self.text_block.post_attention(text, out[:, n + nc:], tr)
        return x, clip, text


class FinalBlock(nn.Module):
    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim, bias=True))
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.conv = ChannelLastConv1d(dim, out_dim, kernel_size=7, padding=3)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)
        return self.conv(modulate(self.norm(x), shift, scale))


class TimestepEmbedder(nn.Module):
    """Sinusoidal features [cos(t f), sin(t f)] → Linear → SiLU → Linear."""

    def __init__(self, dim: int, freq_dim: int, max_period: float) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.max_period = max_period
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def freqs(self, device: torch.device) -> torch.Tensor:
        # Recomputed (not a saved buffer), so checkpoints that carry `t_embed.freqs` are ignored.
        base = 1.0 / (10000 ** (torch.arange(0, self.freq_dim, 2, dtype=torch.float32, device=device) / self.freq_dim))
        return (10000 / self.max_period) * base

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        args = t[:, None].float() * self.freqs(t.device)[None]
        emb = torch.cat([args.cos(), args.sin()], dim=-1)
        return self.mlp(emb.to(self.mlp[0].weight.dtype))


# ---------------------------------------------------------------------------- conditions


@dataclass
class PreprocessedConditions:
    """Per-track conditioning, computed once and reused at every ODE step."""

    clip_f: torch.Tensor    # [B, Nc, D]
    sync_f: torch.Tensor    # [B, N, D] (already at the latent rate)
    text_f: torch.Tensor    # [B, L, D]
    clip_f_c: torch.Tensor  # [B, D]
    text_f_c: torch.Tensor  # [B, D]

    @property
    def batch_size(self) -> int:
        return self.clip_f.shape[0]

    @property
    def latent_len(self) -> int:
        return self.sync_f.shape[1]

    def expand(self, bs: int) -> "PreprocessedConditions":
        return PreprocessedConditions(**{f.name: getattr(self, f.name).expand(bs, *getattr(self, f.name).shape[1:])
                                         for f in fields(self)})

    @staticmethod
    def cat(parts: Sequence["PreprocessedConditions"]) -> "PreprocessedConditions":
        """Stack along the batch (e.g. [null; cond; guidance] for one batched NAG step)."""
        return PreprocessedConditions(**{f.name: torch.cat([getattr(p, f.name) for p in parts], dim=0)
                                         for f in fields(PreprocessedConditions)})


# ---------------------------------------------------------------------------- the network


class MMAudio(ModelMixin, ConfigMixin):
    """MMAudio MM-DiT velocity network (see module docstring for the math)."""

    config_name = "config.json"
    _supports_gradient_checkpointing = False

    @register_to_config
    def __init__(
        self,
        latent_dim: int,
        clip_dim: int,
        sync_dim: int,
        text_dim: int,
        hidden_dim: int,
        depth: int,
        fused_depth: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        latent_seq_len: int = 250,
        clip_seq_len: int = 64,
        sync_seq_len: int = 192,
        text_seq_len: int = 77,
        v2: bool = False,
    ) -> None:
        super().__init__()
        if hidden_dim % num_heads or (hidden_dim // num_heads) % 2:
            raise ValueError("hidden_dim / num_heads must be an even integer (RoPE rotates pairs)")
        if not 0 <= fused_depth < depth:
            raise ValueError("need 0 <= fused_depth < depth (at least one joint block)")
        d = hidden_dim
        act = nn.SiLU if v2 else nn.SELU
        self.audio_input_proj = nn.Sequential(
            ChannelLastConv1d(latent_dim, d, kernel_size=7, padding=3), act(), ConvMLP(d, 4 * d, 7, 3))
        # v1 has no activation between the clip/text input linear and its MLP (hence index 1 vs 2).
        clip_mid = [nn.SiLU()] if v2 else []
        self.clip_input_proj = nn.Sequential(nn.Linear(clip_dim, d), *clip_mid, ConvMLP(d, 4 * d, 3, 1))
        self.sync_input_proj = nn.Sequential(
            ChannelLastConv1d(sync_dim, d, kernel_size=7, padding=3), act(), ConvMLP(d, 4 * d, 3, 1))
        text_mid = [nn.SiLU()] if v2 else []
        self.text_input_proj = nn.Sequential(nn.Linear(text_dim, d), *text_mid, MLP(d, 4 * d))
        self.clip_cond_proj = nn.Linear(d, d)
        self.text_cond_proj = nn.Linear(d, d)
        self.global_cond_mlp = MLP(d, 4 * d)
        self.sync_pos_emb = nn.Parameter(torch.zeros(1, 1, SYNC_SEGMENT, sync_dim))
        self.final_layer = FinalBlock(d, latent_dim)
        self.t_embed = TimestepEmbedder(d, d, 1.0) if v2 else TimestepEmbedder(d, 256, 10000.0)
        n_joint = depth - fused_depth
        self.joint_blocks = nn.ModuleList(
            [JointBlock(d, num_heads, mlp_ratio, pre_only=(i == n_joint - 1)) for i in range(n_joint)])
        self.fused_blocks = nn.ModuleList(
            [MMDitSingleBlock(d, num_heads, mlp_ratio, kernel_size=3, padding=1) for _ in range(fused_depth)])
        # Frozen tensors that live in the state dict (as in the official model). The official code
        # fills latent_mean/std with NaN until a checkpoint is loaded; identity statistics are a
        # safer default for networks trained on an already-normalised codec (our bundle).
        self.latent_mean = nn.Parameter(torch.zeros(1, 1, latent_dim), requires_grad=False)
        self.latent_std = nn.Parameter(torch.ones(1, 1, latent_dim), requires_grad=False)
        self.empty_string_feat = nn.Parameter(torch.zeros(text_seq_len, text_dim), requires_grad=False)
        self.empty_clip_feat = nn.Parameter(torch.zeros(1, clip_dim))
        self.empty_sync_feat = nn.Parameter(torch.zeros(1, sync_dim))
        self._rot_cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        self.initialize_weights()

    # ------------------------------------------------------------------ init
    def initialize_weights(self) -> None:
        """DiT init: xavier linears, small time-MLP, zero adaLN and zero output (u ≡ 0 at start)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.normal_(self.t_embed.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embed.mlp[2].weight, std=0.02)
        blocks = [b for j in self.joint_blocks for b in (j.latent_block, j.clip_block, j.text_block)]
        for b in blocks + list(self.fused_blocks) + [self.final_layer]:
            nn.init.zeros_(b.adaLN_modulation[-1].weight)
            nn.init.zeros_(b.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final_layer.conv.weight)
        nn.init.zeros_(self.final_layer.conv.bias)

    # ------------------------------------------------------------------ sizes
    @property
    def head_dim(self) -> int:
        return self.config.hidden_dim // self.config.num_heads

    def rotations(self, latent_len: int, clip_len: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """RoPE tables for these lengths; clip positions scaled by N/Nc to share the audio's time axis."""
        key = (latent_len, clip_len, str(device))
        if key not in self._rot_cache:
            self._rot_cache[key] = (
                rope_table(latent_len, self.head_dim, 1.0, device=device),
                rope_table(clip_len, self.head_dim, latent_len / clip_len, device=device),
            )
        return self._rot_cache[key]

    # ------------------------------------------------------------------ normalisation
    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.latent_mean) / self.latent_std

    def unnormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.latent_std + self.latent_mean

    # ------------------------------------------------------------------ conditioning
    def preprocess_conditions(self, clip_f: torch.Tensor, sync_f: torch.Tensor, text_f: torch.Tensor,
                              latent_len: int | None = None) -> PreprocessedConditions:
        """Project the three condition streams once per track. ``latent_len`` defaults to the
        configured latent length scaled by clip_len / clip_seq_len (rounded up)."""
        c = self.config
        bs, ns = sync_f.shape[0], sync_f.shape[1]
        if ns % SYNC_SEGMENT:
            raise ValueError(f"sync length {ns} is not a multiple of {SYNC_SEGMENT}")
        if latent_len is None:
            latent_len = math.ceil(clip_f.shape[1] * c.latent_seq_len / c.clip_seq_len - 1e-6)
        sync_f = (sync_f.reshape(bs, ns // SYNC_SEGMENT, SYNC_SEGMENT, -1) + self.sync_pos_emb).flatten(1, 2)
        clip_h = self.clip_input_proj(clip_f)
        sync_h = self.sync_input_proj(sync_f)
        text_h = self.text_input_proj(text_f)
        # Sync tokens (24/s) → latent frames (31.25/s for 16k) by nearest-exact resampling.
        sync_h = F.interpolate(sync_h.transpose(1, 2), size=latent_len, mode="nearest-exact").transpose(1, 2)
        return PreprocessedConditions(
            clip_f=clip_h, sync_f=sync_h, text_f=text_h,
            clip_f_c=self.clip_cond_proj(clip_h.mean(dim=1)),
            text_f_c=self.text_cond_proj(text_h.mean(dim=1)),
        )

    def get_empty_conditions(self, bs: int, negative_text_features: torch.Tensor | None = None,
                             latent_len: int | None = None, clip_len: int | None = None,
                             sync_len: int | None = None) -> PreprocessedConditions:
        """Null conditions: learned empty clip/sync vectors over the sequence, empty-string text
        (or ``negative_text_features [B or 1, L, text_dim]``: MMAudio's negative prompt)."""
        c = self.config
        clip_len = clip_len or c.clip_seq_len
        sync_len = sync_len or c.sync_seq_len
        latent_len = latent_len or math.ceil(clip_len * c.latent_seq_len / c.clip_seq_len - 1e-6)
        text = self.empty_string_feat[None] if negative_text_features is None else negative_text_features
        clip = self.empty_clip_feat[None].expand(1, clip_len, -1)
        sync = self.empty_sync_feat[None].expand(1, sync_len, -1)
        if text.shape[0] == 1:
            return self.preprocess_conditions(clip, sync, text, latent_len).expand(bs)
        cond = self.preprocess_conditions(clip.expand(text.shape[0], -1, -1), sync.expand(text.shape[0], -1, -1),
                                          text, latent_len)
        return cond if text.shape[0] == bs else cond.expand(bs)

    # ------------------------------------------------------------------ velocity
    def embed(self, latent: torch.Tensor, t: torch.Tensor, conditions: PreprocessedConditions
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Audio tokens and the two adaLN inputs: (x [B,N,D], global_c [B,1,D], extended_c [B,N,D])."""
        if latent.shape[1] != conditions.latent_len:
            raise ValueError(f"latent length {latent.shape[1]} != conditions' {conditions.latent_len}")
        if t.dim() == 0:
            t = t.expand(latent.shape[0])
        x = self.audio_input_proj(latent)
        global_c = self.global_cond_mlp(conditions.clip_f_c + conditions.text_f_c)
        global_c = (self.t_embed(t) + global_c)[:, None]
        return x, global_c, global_c + conditions.sync_f

    def run_blocks(self, x: torch.Tensor, global_c: torch.Tensor, extended_c: torch.Tensor,
                   conditions: PreprocessedConditions,
                   latent_residuals: Sequence[torch.Tensor | None] | None = None) -> torch.Tensor:
        """All transformer blocks + the final layer; optional per-block residuals on the audio stream."""
        latent_rot, clip_rot = self.rotations(x.shape[1], conditions.clip_f.shape[1], x.device)
        clip, text = conditions.clip_f, conditions.text_f
        j = 0
        for block in self.joint_blocks:
            x, clip, text = block(x, clip, text, global_c, extended_c, latent_rot, clip_rot)
            x = _add_residual(x, latent_residuals, j)
            j += 1
        for block in self.fused_blocks:
            x = block(x, extended_c, latent_rot)
            x = _add_residual(x, latent_residuals, j)
            j += 1
        # The official final layer is modulated by the global condition, not the per-frame one.
        return self.final_layer(x, global_c)

    def predict_flow(self, latent: torch.Tensor, t: torch.Tensor, conditions: PreprocessedConditions,
                     latent_residuals: Sequence[torch.Tensor | None] | None = None) -> torch.Tensor:
        """Velocity for ``latent [B, N, latent_dim]`` at times ``t [B]`` (or a scalar)."""
        x, global_c, extended_c = self.embed(latent, t, conditions)
        return self.run_blocks(x, global_c, extended_c, conditions, latent_residuals)

    def forward(self, latent: torch.Tensor, clip_f: torch.Tensor, sync_f: torch.Tensor, text_f: torch.Tensor,
                t: torch.Tensor) -> torch.Tensor:
        return self.predict_flow(latent, t, self.preprocess_conditions(clip_f, sync_f, text_f, latent.shape[1]))

    # ------------------------------------------------------------------ official checkpoints
    @classmethod
    def from_preset(cls, preset: str | Mapping[str, Any], **overrides: Any) -> "MMAudio":
        return cls(**{**resolve_config(preset), **overrides})

    @classmethod
    def load_official(cls, checkpoint: str | Path | Mapping[str, torch.Tensor],
                      config: str | Mapping[str, Any], dtype: torch.dtype = torch.float32) -> "MMAudio":
        """Build ``config`` (preset name or constructor dict) and strictly load an official state
        dict (``.pth`` via ``torch.load(weights_only=True)``, ``.safetensors``, or a dict)."""
        sd = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in read_official_state_dict(checkpoint).items()}
        # Built on the meta device and filled by assignment: no random init of weights that are
        # overwritten anyway (matters for the 1B-parameter presets), and no second copy in memory.
        with torch.device("meta"):
            net = cls.from_preset(config)
        net.load_state_dict(sd, strict=True, assign=True)
        return net.eval()


def _add_residual(x: torch.Tensor, residuals: Sequence[torch.Tensor | None] | None, j: int) -> torch.Tensor:
    if residuals is None or j >= len(residuals) or residuals[j] is None:
        return x
    r = residuals[j]
    if r.shape[0] == x.shape[0]:
        return x + r
    # Branch ran on the last r.shape[0] rows only (the guidance slice of a batched step).
    return torch.cat([x[: x.shape[0] - r.shape[0]], x[x.shape[0] - r.shape[0]:] + r], dim=0)


def resolve_config(preset: str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise KeyError(f"unknown MMAudio preset {preset!r}; known: {sorted(PRESETS)}")
        return dict(PRESETS[preset])
    allowed = set(PRESETS["tiny"]) | {"mlp_ratio"}
    return {k: v for k, v in dict(preset).items() if k in allowed}


def read_official_state_dict(checkpoint: str | Path | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An official state dict with the derived (recomputed) keys dropped."""
    if isinstance(checkpoint, (str, Path)):
        path = Path(checkpoint)
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
            # Some training checkpoints wrap the weights (e.g. {"weights": …} / EMA dicts).
            for wrapper in ("weights", "state_dict", "model"):
                if isinstance(sd, dict) and wrapper in sd and isinstance(sd[wrapper], dict):
                    sd = sd[wrapper]
    else:
        sd = dict(checkpoint)
    return {k: v for k, v in sd.items() if k not in DERIVED_KEYS}
