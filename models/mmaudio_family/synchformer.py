"""Synchformer's video encoder (Iashin et al. 2024), the source of MMAudio's sync features.

Input: 25 fps frames, 224 × 224, in [−1, 1]. ``encode`` cuts the video [B, T, 3, 224, 224] into
S = (T − 16) // 8 + 1 segments of 16 frames every 8 frames (consecutive segments overlap by half)
and returns [B, 8·S, D]: 8 tokens per segment, token k of segment s covering frames 8s + 2k and
8s + 2k + 1.

Per segment (a MotionFormer ViT-B/16 with divided space–time attention, D = 768, 12 blocks):

    patches   p = Conv3d(kernel = stride = (2, 16, 16))(x)  → 8 × 14 × 14 tokens, (frame, row, col)
    tokens    z = [cls + P₀ ;  p_{f,n} + P_{1+n} + Tf]      P = pos_embed (197), T = temp_embed (8)
    block     z ← z + TimeAttn(LN₃ z)      a patch token attends to the CLS and the 8 tokens of its
                                           own spatial position; the CLS attends to every token
              z ← z + SpaceAttn(LN₁ z)     a patch token attends to the CLS and the 196 tokens of
                                           its own frame; the CLS attends to every token
              z ← z + MLP(LN₂ z)           fc1 → exact GELU → fc2, hidden 4D
    features  LN(z) without the CLS → per frame f, a pre-norm TransformerEncoderLayer over
              [c ; 196 tokens of frame f] with its own CLS c (exact GELU, hidden 4D); its output
              at c is the frame's token. No temporal pooling: 8 tokens per segment.

Attention: h heads of size d = D / h, ``qkv = W x`` split as [q | k | v] along the features,
q ← q · d^(−1/2), softmax(q kᵀ) v, heads concatenated, then ``proj``. The CLS queries use the
full sequence; the patch queries use the group (time or space) with the CLS key/value prepended.
LayerNorm ε = 1e-6 everywhere. ``patch_embed.proj`` (a 2-D patch conv) is in the official state
dict but unused, kept so checkpoints load strictly.

State-dict keys are the official ``vfeat_extractor.*`` ones; the released
``synchformer_state_dict.pth`` also holds the audio branch and the synchronisation head, which
``from_official`` drops (as the official ``Synchformer.load_state_dict`` does).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from models.mmaudio_family.state_dict import check_state_dict, read_state_dict

PREFIX = "vfeat_extractor."
SEGMENT_FRAMES = 16
SEGMENT_STEP = 8


class DividedAttention(nn.Module):
    """Multi-head attention of the CLS over everything and of patches within groups (see module doc)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, num_frames: int, over_time: bool) -> torch.Tensor:
        b, length, dim = x.shape
        h = self.num_heads
        q, k, v = self.qkv(x).reshape(b, length, 3, h, dim // h).permute(2, 0, 3, 1, 4)  # each [B, h, L, d]
        q = q * self.scale
        # q is already scaled (as the official code does), hence scale=1 in the fused attention.
        cls_out = F.scaled_dot_product_attention(q[:, :, :1], k, v, scale=1.0)  # [B, h, 1, d]

        n = (length - 1) // num_frames
        # Patch tokens as [B, h, groups, group_len, d]: frames × positions (space) or the transpose (time).
        def grouped(t: torch.Tensor) -> torch.Tensor:
            g = t[:, :, 1:].reshape(b, h, num_frames, n, -1)
            return g.transpose(2, 3) if over_time else g

        qg, kg, vg = grouped(q), grouped(k), grouped(v)
        groups = qg.shape[2]
        cls_k = k[:, :, None, :1].expand(b, h, groups, 1, k.shape[-1])
        cls_v = v[:, :, None, :1].expand(b, h, groups, 1, v.shape[-1])
        kg, vg = torch.cat([cls_k, kg], dim=3), torch.cat([cls_v, vg], dim=3)
        out = F.scaled_dot_product_attention(qg, kg, vg, scale=1.0)
        if over_time:
            out = out.transpose(2, 3)
        out = torch.cat([cls_out, out.reshape(b, h, num_frames * n, -1)], dim=2)
        return self.proj(out.transpose(1, 2).reshape(b, length, dim))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class DividedSpaceTimeBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = DividedAttention(dim, num_heads, qkv_bias)
        self.timeattn = DividedAttention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.norm3 = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        x = x + self.timeattn(self.norm3(x), num_frames, over_time=True)
        x = x + self.attn(self.norm1(x), num_frames, over_time=False)
        return x + self.mlp(self.norm2(x))


class PatchConv(nn.Module):
    """Holds ``proj`` under the official key name (``patch_embed.proj`` / ``patch_embed_3d.proj``)."""

    def __init__(self, proj: nn.Module) -> None:
        super().__init__()
        self.proj = proj


class FramePooling(nn.Module):
    """Pre-norm transformer encoder layer over [cls ; tokens of one frame], returning the cls output
    (the official ``SpatialTransformerEncoderLayer``, an ``nn.TransformerEncoderLayer`` subclass)."""

    def __init__(self, dim: int, num_heads: int, hidden: int) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.self_attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.linear1 = nn.Linear(dim, hidden)
        self.linear2 = nn.Linear(hidden, dim)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.cls_token.expand(x.shape[0], 1, -1), x], dim=1)
        y = self.norm1(x)
        x = x + self.self_attn(y, y, y, need_weights=False)[0]
        x = x + self.linear2(F.gelu(self.linear1(self.norm2(x))))
        return x[:, 0]


class MotionFormer(nn.Module):
    def __init__(self, embed_dim: int, depth: int, num_heads: int, mlp_ratio: float, qkv_bias: bool,
                 patch_size: int, temporal_patch_size: int, image_size: int, num_frames: int) -> None:
        super().__init__()
        grid = image_size // patch_size
        self.num_frames = num_frames // temporal_patch_size  # tokens per segment along time
        self.grid = grid
        self.patch_embed = PatchConv(nn.Conv2d(3, embed_dim, patch_size, stride=patch_size))
        kernel = (temporal_patch_size, patch_size, patch_size)
        self.patch_embed_3d = PatchConv(nn.Conv3d(3, embed_dim, kernel, stride=kernel))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, embed_dim))
        self.temp_embed = nn.Parameter(torch.zeros(1, self.num_frames, embed_dim))
        self.blocks = nn.ModuleList(
            [DividedSpaceTimeBlock(embed_dim, num_heads, mlp_ratio, qkv_bias) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.spatial_attn_agg = FramePooling(embed_dim, num_heads, int(mlp_ratio * embed_dim))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, 3, 16, H, W]`` → tokens ``[N, 1 + 8·14·14, D]`` (CLS first) before the final norm."""
        x = self.patch_embed_3d.proj(x).flatten(2).transpose(1, 2)
        t, n = self.num_frames, self.grid * self.grid
        pos = self.pos_embed[:, 1:].repeat(1, t, 1) + self.temp_embed.repeat_interleave(n, dim=1)
        cls = self.cls_token + self.pos_embed[:, :1]
        x = torch.cat([cls.expand(x.shape[0], 1, -1), x + pos], dim=1)
        for block in self.blocks:
            x = block(x, t)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, 3, 16, H, W]`` → one token per temporal patch ``[N, 8, D]``."""
        z = self.norm(self.forward_features(x)[:, 1:])
        n_seg, _, dim = z.shape
        per_frame = z.reshape(n_seg * self.num_frames, self.grid * self.grid, dim)
        return self.spatial_attn_agg(per_frame).reshape(n_seg, self.num_frames, dim)


class Synchformer(ModelMixin, ConfigMixin):
    """Synchformer's visual branch with official key names (see module docstring)."""

    config_name = "config.json"

    @register_to_config
    def __init__(self, embed_dim: int = 768, depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, patch_size: int = 16, temporal_patch_size: int = 2,
                 image_size: int = 224, segment_frames: int = SEGMENT_FRAMES,
                 segment_step: int = SEGMENT_STEP) -> None:
        super().__init__()
        self.vfeat_extractor = MotionFormer(embed_dim, depth, num_heads, mlp_ratio, qkv_bias, patch_size,
                                            temporal_patch_size, image_size, segment_frames)

    def forward(self, segments: torch.Tensor) -> torch.Tensor:
        """``[B, S, 16, 3, H, W]`` → ``[B, S, 8, D]`` (the official ``Synchformer.forward``)."""
        b, s = segments.shape[:2]
        x = segments.flatten(0, 1).transpose(1, 2)  # [B·S, 3, 16, H, W]
        out = self.vfeat_extractor(x)
        return out.reshape(b, s, *out.shape[1:])

    @staticmethod
    def num_segments(num_frames: int, segment_frames: int = SEGMENT_FRAMES, step: int = SEGMENT_STEP) -> int:
        return max(0, (num_frames - segment_frames) // step + 1)

    def segment(self, video: torch.Tensor) -> torch.Tensor:
        """``[B, T, 3, H, W]`` → overlapping segments ``[B, S, 16, 3, H, W]``."""
        size, step = self.config.segment_frames, self.config.segment_step
        s = self.num_segments(video.shape[1], size, step)
        if s == 0:
            raise ValueError(f"need at least {size} frames for one Synchformer segment, got {video.shape[1]}")
        return video.unfold(1, size, step).permute(0, 1, 5, 2, 3, 4)[:, :s]

    @torch.no_grad()
    def encode(self, video: torch.Tensor, batch_size: int = -1) -> torch.Tensor:
        """Sync features of 25 fps frames in [−1, 1], ``[B, T, 3, 224, 224]`` → ``[B, 8·S, D]``.

        ``batch_size`` bounds how many segments run at once (all of them if < 0); the official
        code runs one video's segments per call."""
        segments = self.segment(video.to(self.dtype))
        b, s = segments.shape[:2]
        flat = segments.flatten(0, 1)
        step = flat.shape[0] if batch_size < 0 else max(1, batch_size)
        out = torch.cat([self.vfeat_extractor(flat[i: i + step].transpose(1, 2)) for i in range(0, flat.shape[0], step)])
        return out.reshape(b, s * out.shape[1], out.shape[2])

    # ------------------------------------------------------------------ official checkpoints
    @classmethod
    def from_official(cls, checkpoint: str | Path | Mapping[str, torch.Tensor],
                      config: Mapping | None = None, dtype: torch.dtype = torch.float32) -> "Synchformer":
        """Build (real size unless ``config`` says otherwise) and load ``synchformer_state_dict.pth``
        or any state dict with official keys; keys outside ``vfeat_extractor.*`` are dropped, the
        rest must match exactly."""
        sd = {k: v for k, v in read_state_dict(checkpoint).items() if k.startswith(PREFIX)}
        with torch.device("meta"):
            model = cls(**dict(config or {}))
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        check_state_dict("Synchformer (vfeat_extractor.*)", expected, sd)
        sd = {k: v.to(dtype) if v.is_floating_point() else v for k, v in sd.items()}
        model.load_state_dict(sd, strict=True, assign=True)
        return model.eval()
