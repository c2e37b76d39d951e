"""Conditioning features of the default bundle: cheap video streams and a small text encoder.

Video (``VideoFeatures``), two streams at MMAudio's token rates so the network's shapes match:

* clip, 8 frames/s → 8·d tokens of 64 dims. Each frame x ∈ [0,1]^{H×W×3} is area-averaged to an
  8×8 RGB grid g (192 values, rescaled to [−1, 1]) and projected, c = W g + b, by a tiny learned
  linear map trained together with the base network. What it keeps: which coloured objects are
  where — in FoleyWorld that identifies the sound sources.
* sync, 25 frames/s → 24·d tokens of 32 dims (MMAudio's sync length: 8 s → 192). Non-learned.
  Luma Y_t is area-averaged to 16×16; the motion energy of cell k (of a 4×4 grid) is
      E_t[k] = mean_{pixels in k} |Y_t − Y_{t−1}|        (E_0 = 0),
  and its onset strength O_t[k] = max(E_t[k] − E_{t−1}[k], 0) marks the moment motion starts —
  impacts (a foot landing, a hammer striking) sound on those. Both go through log(1 + g·x)
  to compress the range, giving 16 + 16 = 32 dims per frame. g = 500 puts FoleyWorld's
  features near unit scale (energy std 1.0, onset 0.5), like the network's other inputs
  (g = 50: 0.3 / 0.17). A bundle keeps the g it was trained with in its config. Measured: the
  shipped base's flow-matching loss does not change when the video is nulled at either g, so
  in its training budget it has not learned audio-visual timing (see the bundle README).
  Frame i is at time i/25 s; token j is at time (j + ½)/24 s and takes the linear
  interpolation of the frame features there.
  Optional third channel group (``sync_channels`` containing "velocity", bundles from issue 19
  on): the signed Lucas–Kanade velocity (v_x, v_y) of each cell (``motion_flow.py``),
  compressed as sign(v)·log(1 + 20|v|) (std ≈ 1 on FoleyWorld), 2·16 more dims (64 in all).
  Energy and onset cannot see an impact inside continuous motion (a knock, a footfall as the
  other foot rises, a bell at the end of its swing); the velocity's sign change marks it.

Text (``TextEncoder``): word-level tokens (``build_tokenizer``, padded/truncated to 16) →
embedding + learned positions → 2 pre-norm transformer encoder layers → LayerNorm, giving
``[B, 16, 64]``, the shape of the network's text stream. Trained with the base network.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Iterable, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from models.demo_family.motion_flow import cell_velocity, compress_signed

PAD_TOKEN = "[PAD]"
# Values per grid cell of each sync channel group (velocity: v_x and v_y).
SYNC_CHANNEL_WIDTH = {"energy": 1, "onset": 1, "velocity": 2}
UNK_TOKEN = "[UNK]"


@dataclass(frozen=True)
class FrameSpec:
    """How a bundle wants one video stream delivered: frames/s, square side in pixels, and how
    to get there from the source aspect ratio ("resize" squashes, "center_crop" crops the short
    side). Frames are ``uint8 [T, H, W, 3]``."""

    fps: float
    size: int
    # "mmaudio_clip" / "mmaudio_sync": MMAudio's own frame picking and bicubic transforms
    # (tasks/frames_mmaudio.py), asked for by the MMAudio family's video features.
    crop: Literal["resize", "center_crop", "mmaudio_clip", "mmaudio_sync"] = "resize"

    def to_dict(self) -> dict:
        return asdict(self)


def _as_video_batch(frames: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 ``[T,H,W,3]`` or ``[B,T,H,W,3]`` → float ``[B, T, 3, H, W]`` in [0, 1]."""
    x = torch.as_tensor(np.asarray(frames) if not isinstance(frames, torch.Tensor) else frames)
    if x.dim() == 4:
        x = x[None]
    if x.dim() != 5 or x.shape[-1] != 3:
        raise ValueError(f"expected frames [T,H,W,3] or [B,T,H,W,3], got {tuple(x.shape)}")
    x = x.to(torch.float32)
    if x.max() > 1.0 or frames_are_uint8(frames):
        x = x / 255.0
    return x.permute(0, 1, 4, 2, 3).contiguous()


def frames_are_uint8(frames: torch.Tensor | np.ndarray) -> bool:
    return (isinstance(frames, np.ndarray) and frames.dtype == np.uint8) or (
        isinstance(frames, torch.Tensor) and frames.dtype == torch.uint8
    )


def _fit_length(x: torch.Tensor, length: int) -> torch.Tensor:
    """Crop or edge-pad ``[B, T, ...]`` to ``length`` along T (a short read repeats its last frame)."""
    t = x.shape[1]
    if t >= length:
        return x[:, :length]
    if t == 0:
        raise ValueError("no frames")
    pad = x[:, -1:].expand(x.shape[0], length - t, *x.shape[2:])
    return torch.cat([x, pad], dim=1)


class VideoFeatures(ModelMixin, ConfigMixin):
    """Clip (8 fps → 64-d, tiny learned projection) and sync (25 fps motion energy → 32-d) streams."""

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        clip_fps: float = 8.0,
        clip_size: int = 64,
        clip_grid: int = 8,
        clip_dim: int = 64,
        sync_fps: float = 25.0,
        sync_size: int = 64,
        sync_grid: int = 4,
        sync_dim: int = 32,
        sync_token_rate: float = 24.0,
        motion_gain: float = 500.0,
        seed: int = 0,
        sync_channels: Sequence[str] = ("energy", "onset"),
        velocity_gain: float = 20.0,
    ) -> None:
        super().__init__()
        unknown = set(sync_channels) - set(SYNC_CHANNEL_WIDTH)
        if unknown or not sync_channels:
            raise ValueError(f"sync_channels must be a non-empty subset of {sorted(SYNC_CHANNEL_WIDTH)}; got {list(sync_channels)}")
        want = sync_grid * sync_grid * sum(SYNC_CHANNEL_WIDTH[c] for c in sync_channels)
        if sync_dim != want:
            raise ValueError(f"sync_dim must be {want} for channels {list(sync_channels)} on a {sync_grid}² grid")
        self.clip_proj = nn.Linear(3 * clip_grid * clip_grid, clip_dim)
        # Seeded init so an untrained bundle is reproducible too.
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            fan_in = 3 * clip_grid * clip_grid
            self.clip_proj.weight.copy_(torch.randn(clip_dim, fan_in, generator=gen) / fan_in**0.5)
            self.clip_proj.bias.zero_()

    def frame_specs(self) -> dict[str, FrameSpec]:
        return {
            "clip": FrameSpec(fps=float(self.config.clip_fps), size=int(self.config.clip_size), crop="resize"),
            "sync": FrameSpec(fps=float(self.config.sync_fps), size=int(self.config.sync_size), crop="resize"),
        }

    def num_clip_tokens(self, duration: float) -> int:
        return int(duration * self.config.clip_fps + 1e-6)

    def num_sync_tokens(self, duration: float) -> int:
        return int(duration * self.config.sync_token_rate + 1e-6)

    def clip_grid_features(self, frames: torch.Tensor | np.ndarray, duration: float) -> torch.Tensor:
        """The non-learned part of the clip stream: ``[B, 8·d, 3·grid²]`` in [−1, 1]."""
        x = _as_video_batch(frames).to(self.clip_proj.weight.device)
        b, t = x.shape[:2]
        g = self.config.clip_grid
        pooled = F.adaptive_avg_pool2d(x.reshape(b * t, 3, *x.shape[-2:]), g).reshape(b, t, 3 * g * g)
        return _fit_length(pooled * 2.0 - 1.0, self.num_clip_tokens(duration))

    def encode_clip(self, frames: torch.Tensor | np.ndarray, duration: float) -> torch.Tensor:
        """uint8 frames at 8 fps ``[B,T,H,W,3]`` / ``[T,H,W,3]`` → ``[B, int(8·d), 64]``."""
        grid = self.clip_grid_features(frames, duration)
        return self.clip_proj(grid.to(self.clip_proj.weight.dtype))

    @torch.no_grad()
    def encode_sync(self, frames: torch.Tensor | np.ndarray, duration: float) -> torch.Tensor:
        """uint8 frames at 25 fps → the ``sync_channels`` per 4×4 cell, ``[B, int(24·d), sync_dim]``."""
        x = _as_video_batch(frames)
        b, t = x.shape[:2]
        luma = 0.299 * x[:, :, 0] + 0.587 * x[:, :, 1] + 0.114 * x[:, :, 2]  # [B, T, H, W]
        small = F.adaptive_avg_pool2d(luma.reshape(b * t, 1, *luma.shape[-2:]), 16).reshape(b, t, 16, 16)
        diff = torch.zeros_like(small)
        diff[:, 1:] = (small[:, 1:] - small[:, :-1]).abs()
        g = self.config.sync_grid
        energy = F.adaptive_avg_pool2d(diff.reshape(b * t, 1, 16, 16), g).reshape(b, t, g * g)
        onset = torch.zeros_like(energy)
        onset[:, 1:] = (energy[:, 1:] - energy[:, :-1]).clamp(min=0.0)
        parts = {"energy": torch.log1p(self.config.motion_gain * energy),
                 "onset": torch.log1p(self.config.motion_gain * onset)}
        if "velocity" in self.config.sync_channels:
            parts["velocity"] = compress_signed(cell_velocity(luma, g), self.config.velocity_gain)
        feats = torch.cat([parts[c] for c in self.config.sync_channels], dim=-1)  # [B, T, sync_dim]
        # Resample frame-rate features to token times by linear interpolation.
        n_tok = self.num_sync_tokens(duration)
        pos = (torch.arange(n_tok, dtype=torch.float32) + 0.5) / self.config.sync_token_rate * self.config.sync_fps
        pos = pos.clamp(0.0, float(t - 1))
        lo = pos.floor().long()
        hi = (lo + 1).clamp(max=t - 1)
        frac = (pos - lo.float())[None, :, None]
        out = feats[:, lo] * (1 - frac) + feats[:, hi] * frac
        return out.to(self.clip_proj.weight.device, self.clip_proj.weight.dtype)


# ---------------------------------------------------------------------------- text

_WORD = re.compile(r"[a-z0-9']+|[^\sa-z0-9']")


def _words(text: str) -> list[str]:
    """The same split the tokenizer's normaliser + pre-tokeniser apply (lower-case, words and
    single punctuation marks), used to collect the vocabulary."""
    return _WORD.findall(text.lower())


def build_tokenizer(vocab_texts: Iterable[str], max_length: int = 16):
    """A word-level ``PreTrainedTokenizerFast`` over the words of ``vocab_texts`` (sorted, so the
    ids do not depend on text order), padding and truncating to ``max_length`` (16). Unknown
    words map to ``[UNK]``; ``[PAD]`` is id 0."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = sorted({w for text in vocab_texts for w in _words(text)})
    vocab = {PAD_TOKEN: 0, UNK_TOKEN: 1}
    for w in words:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK_TOKEN))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    # Split on whitespace, then isolate every punctuation mark as its own token.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(r"[^a-z0-9']"), behavior="isolated")]
    )
    tok.enable_padding(pad_id=0, pad_token=PAD_TOKEN, length=max_length)
    tok.enable_truncation(max_length=max_length)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        model_max_length=max_length,
        padding_side="right",
        truncation_side="right",
    )
    return fast


def tokenize(tokenizer, texts: Sequence[str], max_length: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Texts → ``(input_ids [B, 16], attention_mask [B, 16])`` (always exactly ``max_length``)."""
    enc = tokenizer(
        list(texts), padding="max_length", truncation=True, max_length=max_length, return_tensors="pt"
    )
    return enc["input_ids"], enc["attention_mask"]


class TextEncoder(ModelMixin, ConfigMixin):
    """Embedding + positions → pre-norm transformer encoder → LayerNorm: ``[B, 16] → [B, 16, 64]``."""

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        vocab_size: int = 256,
        text_dim: int = 64,
        text_seq_len: int = 16,
        num_layers: int = 2,
        num_heads: int = 2,
        ff_mult: int = 2,
        dropout: float = 0.0,
        pad_token_id: int = 0,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, text_dim, padding_idx=pad_token_id)
        self.pos = nn.Parameter(torch.zeros(1, text_seq_len, text_dim))
        nn.init.normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(
            text_dim, num_heads, ff_mult * text_dim, dropout=dropout, batch_first=True, norm_first=True, activation="gelu"
        )
        # No nested-tensor fast path: it changes padded outputs between train and eval mode.
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(text_dim)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.embed(input_ids) + self.pos[:, : input_ids.shape[1]]
        pad = None
        if attention_mask is not None:
            pad = attention_mask == 0
            # An all-padding row (empty text) would make attention softmax over nothing → NaN;
            # let every row attend to its first position at least.
            pad = pad.clone()
            pad[:, 0] = False
        return self.norm(self.encoder(x, src_key_padding_mask=pad))
