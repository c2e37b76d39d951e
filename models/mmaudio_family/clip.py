"""The CLIP image and text towers MMAudio conditions on (open_clip's ``CLIP`` in the layout of
apple/DFN5B-CLIP-ViT-H-14-384 = open_clip config ViT-H-14-378-quickgelu), with open_clip key names.

Both towers are pre-norm transformers of residual blocks

    x ← x + Attn(LN₁ x)              (multi-head, packed in_proj [q; k; v], out_proj)
    x ← x + c_proj(act(c_fc(LN₂ x)))  act = quick_gelu(u) = u · σ(1.702 u) (DFN5B), hidden 4·width

LayerNorm ε = 1e-5.

Image tower (width 1280, 32 blocks, heads of 80, patch 14, native size 378):
    p = conv1(image) (stride 14, no bias) → g × g tokens; MMAudio feeds 384 px frames, which give the
    same 27 × 27 grid as 378 (the last 6 rows/columns are never seen; resizing to 378 instead would
    change every feature).
    z = LN_pre([class_embedding ; p] + positional_embedding) → blocks → LN_post(z₀) @ proj.
    ``encode_video``: frames in [0, 1] are standardised with OpenAI's mean/std, encoded frame by
    frame, L2-normalised: [B, T, embed_dim] (MMAudio's ``encode_video_with_clip``).

Text tower (width 1024, 24 blocks, 16 heads, context 77, vocabulary 49408):
    h = LN_final(blocks(token_embedding[ids] + positional_embedding)) with a causal mask.
    ``encode_text`` returns h at ALL 77 positions, each L2-normalised: [N, 77, width] — MMAudio's
    patched ``encode_text`` (no pooling, no ``text_projection``); this is the network's text input.
    ``encode_text_pooled`` is open_clip's standard embedding: h at the end-of-text token (the
    largest id of each row) @ text_projection, L2-normalised: [N, embed_dim], comparable with the
    image embeddings by cosine similarity (text–video salience).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import math
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from models.mmaudio_family.state_dict import check_state_dict, read_state_dict

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# open_clip model config ViT-H-14-378-quickgelu (apple/DFN5B-CLIP-ViT-H-14-384).
DFN5B_VISION = dict(image_size=378, layers=32, width=1280, head_width=80, patch_size=14)
DFN5B_TEXT = dict(context_length=77, vocab_size=49408, width=1024, heads=16, layers=24)


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class MLP(nn.Module):
    def __init__(self, width: int, hidden: int, quick_gelu: bool) -> None:
        super().__init__()
        self.c_fc = nn.Linear(width, hidden)
        self.gelu = QuickGELU() if quick_gelu else nn.GELU()
        self.c_proj = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.gelu(self.c_fc(x)))


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width: int, heads: int, mlp_ratio: float, quick_gelu: bool) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = MLP(width, int(width * mlp_ratio), quick_gelu)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, attn_mask=attn_mask, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int, mlp_ratio: float, quick_gelu: bool) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(
            [ResidualAttentionBlock(width, heads, mlp_ratio, quick_gelu) for _ in range(layers)])

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x, attn_mask)
        return x


class VisionTower(nn.Module):
    def __init__(self, image_size: int, layers: int, width: int, head_width: int, patch_size: int,
                 embed_dim: int, quick_gelu: bool, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.grid = image_size // patch_size
        self.conv1 = nn.Conv2d(3, width, patch_size, stride=patch_size, bias=False)
        self.class_embedding = nn.Parameter(torch.zeros(width))
        self.positional_embedding = nn.Parameter(torch.zeros(self.grid * self.grid + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, layers, width // head_width, mlp_ratio, quick_gelu)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.zeros(width, embed_dim))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        p = self.conv1(pixels)
        if p.shape[-2:] != (self.grid, self.grid):
            raise ValueError(f"image {tuple(pixels.shape[-2:])} gives a {tuple(p.shape[-2:])} patch grid; "
                             f"the model has {self.grid}×{self.grid} positions")
        p = p.flatten(2).transpose(1, 2)
        cls = self.class_embedding.to(p.dtype).expand(p.shape[0], 1, -1)
        x = self.ln_pre(torch.cat([cls, p], dim=1) + self.positional_embedding)
        x = self.transformer(x)
        return self.ln_post(x[:, 0]) @ self.proj


class OpenClip(ModelMixin, ConfigMixin):
    """CLIP image + text towers (open_clip ``CLIP`` key names; see module docstring)."""

    config_name = "config.json"

    @register_to_config
    def __init__(self, embed_dim: int = 1024, vision_cfg: Mapping[str, Any] | None = None,
                 text_cfg: Mapping[str, Any] | None = None, quick_gelu: bool = True,
                 image_mean: tuple[float, ...] = CLIP_MEAN, image_std: tuple[float, ...] = CLIP_STD) -> None:
        super().__init__()
        v = {**DFN5B_VISION, **dict(vision_cfg or {})}
        t = {**DFN5B_TEXT, **dict(text_cfg or {})}
        self.visual = VisionTower(v["image_size"], v["layers"], v["width"], v["head_width"], v["patch_size"],
                                  embed_dim, quick_gelu, v.get("mlp_ratio", 4.0))
        self.token_embedding = nn.Embedding(t["vocab_size"], t["width"])
        self.positional_embedding = nn.Parameter(torch.zeros(t["context_length"], t["width"]))
        self.transformer = Transformer(t["width"], t["layers"], t["heads"], t.get("mlp_ratio", 4.0), quick_gelu)
        self.ln_final = nn.LayerNorm(t["width"])
        self.text_projection = nn.Parameter(torch.zeros(t["width"], embed_dim))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        # Additive causal mask (−inf above the diagonal), rebuilt rather than stored: not a checkpoint key.
        self.register_buffer("attn_mask", torch.full((t["context_length"],) * 2, float("-inf")).triu_(1),
                             persistent=False)

    # ------------------------------------------------------------------ image
    def encode_image(self, pixels: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Standardised images ``[N, 3, H, W]`` → ``[N, embed_dim]`` (L2-normalised by default)."""
        x = self.visual(pixels.to(self.dtype))
        return F.normalize(x, dim=-1) if normalize else x

    def standardize(self, frames: torch.Tensor) -> torch.Tensor:
        """[0, 1] RGB → CLIP's input scale (OpenAI mean / std per channel)."""
        mean = torch.tensor(self.config.image_mean, dtype=frames.dtype, device=frames.device)[:, None, None]
        std = torch.tensor(self.config.image_std, dtype=frames.dtype, device=frames.device)[:, None, None]
        return (frames - mean) / std

    @torch.no_grad()
    def encode_video(self, frames: torch.Tensor, batch_size: int = -1) -> torch.Tensor:
        """Frames in [0, 1], ``[B, T, 3, 384, 384]`` → clip features ``[B, T, embed_dim]``."""
        b, t = frames.shape[:2]
        x = self.standardize(frames.to(self.device, torch.float32)).flatten(0, 1)
        step = x.shape[0] if batch_size < 0 else max(1, batch_size)
        out = torch.cat([self.encode_image(x[i: i + step]) for i in range(0, x.shape[0], step)])
        return out.reshape(b, t, -1)

    # ------------------------------------------------------------------ text
    def text_hidden(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token ids ``[N, L]`` → ``LN_final`` output ``[N, L, width]`` (causal; L ≤ context)."""
        n = tokens.shape[1]
        x = self.token_embedding(tokens.to(self.device)) + self.positional_embedding[:n]
        x = self.transformer(x, self.attn_mask[:n, :n].to(x.dtype))
        return self.ln_final(x)

    @torch.no_grad()
    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """MMAudio's text features: ``[N, 77]`` → ``[N, 77, width]``, L2-normalised per position."""
        return F.normalize(self.text_hidden(tokens), dim=-1)

    @torch.no_grad()
    def encode_text_pooled(self, tokens: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """open_clip's text embedding ``[N, embed_dim]``: the end-of-text position, projected."""
        h = self.text_hidden(tokens)
        eot = tokens.to(h.device).argmax(dim=-1)
        x = h[torch.arange(h.shape[0], device=h.device), eot] @ self.text_projection
        return F.normalize(x, dim=-1) if normalize else x

    # ------------------------------------------------------------------ official checkpoints
    @classmethod
    def from_official(cls, checkpoint: str | Path | Mapping[str, torch.Tensor],
                      config: Mapping[str, Any] | None = None, dtype: torch.dtype = torch.float32) -> "OpenClip":
        """Build (DFN5B size unless ``config`` — open_clip's model-config dict: embed_dim,
        vision_cfg, text_cfg, quick_gelu — says otherwise) and strictly load an open_clip state
        dict (``open_clip_pytorch_model.bin`` / ``.safetensors`` of the hub repo, or a mapping)."""
        sd = read_state_dict(checkpoint)
        allowed = {"embed_dim", "vision_cfg", "text_cfg", "quick_gelu"}
        with torch.device("meta"):
            model = cls(**{k: v for k, v in dict(config or {}).items() if k in allowed})
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        check_state_dict("OpenClip", expected, sd)
        sd = {k: v.to(dtype) if v.is_floating_point() else v for k, v in sd.items()}
        model.load_state_dict(sd, strict=True, assign=True)
        # The causal mask is a non-persistent buffer: rebuild it off the meta device.
        ctx = model.positional_embedding.shape[0]
        model.attn_mask = torch.full((ctx, ctx), float("-inf"), dtype=dtype).triu_(1)
        return model.eval()
