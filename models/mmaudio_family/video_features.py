"""MMAudio's video conditioning as one bundle component: CLIP image tower (clip stream) and
Synchformer (sync stream), behind the interface the pipeline uses for the demo ``VideoFeatures``.

Streams for a window of d seconds (MMAudio's ``FeaturesUtils`` + ``load_video``):

    clip   frames at 8 fps, squashed to 384 × 384 (bicubic, antialiased), x / 255,
           standardised with OpenAI's mean / std → CLIP image tower → L2-normalise
           → [B, int(8 d), embed_dim]                                   (1024 for DFN5B)
    sync   frames at 25 fps, short side → 224 (bicubic, antialiased), centre crop 224 × 224,
           (x / 255 − 0.5) / 0.5 → Synchformer over 16-frame segments every 8 frames
           → [B, 8 · ((25 d − 16) // 8 + 1), 768]                        (8 s → 192 tokens)

The frames arrive as ``uint8 [T, H, W, 3]`` (or ``[B, T, H, W, 3]``) at the rates ``frame_specs``
asks for. Frames already at the model's size pass the pixel transforms unchanged; frames of any
other size are resized here with the official transforms (``video_preprocess``), so a caller may
hand in source-resolution frames. The specs' crops "mmaudio_clip" / "mmaudio_sync" make the frame
stage (``tasks/frames_mmaudio.py``) pick and resize frames exactly as ``load_video``.

Frame counts: the sync stream is edge-padded to int(25 d) frames (and at least one 16-frame
segment) before segmenting, so the token count is the official formula for the model duration
d the pipeline asks for, whatever the number of frames decoded. The clip stream is cut or
edge-padded to int(8 d) frames.

State-dict keys: ``clip_visual.*`` (open_clip's ``visual.*``) and ``synchformer.vfeat_extractor.*``
(the official Synchformer keys), so each part is the official tensor under a prefix.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from models.demo_family.features import FrameSpec
from models.mmaudio_family.clip import CLIP_MEAN, CLIP_STD, DFN5B_VISION, OpenClip, VisionTower
from models.mmaudio_family.lengths import clip_seq_len, sync_seq_len
from models.mmaudio_family.synchformer import Synchformer
from models.mmaudio_family.video_preprocess import (
    CLIP_FPS,
    CLIP_SIZE,
    SYNC_FPS,
    SYNC_SIZE,
    clip_frames_u8,
    sync_frames_u8,
)


def _frames_thwc(frames: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 ``[T, H, W, 3]`` / ``[1, T, H, W, 3]`` → uint8 ``[T, H, W, 3]`` (checked)."""
    x = torch.as_tensor(np.ascontiguousarray(frames) if isinstance(frames, np.ndarray) else frames)
    if x.dim() == 5:
        if x.shape[0] != 1:
            raise ValueError("one video at a time")
        x = x[0]
    if x.dim() != 4 or x.shape[-1] != 3 or x.dtype != torch.uint8:
        raise ValueError(f"expected uint8 frames [T, H, W, 3], got {x.dtype} {tuple(x.shape)}")
    return x


def _at_size(frames: torch.Tensor | np.ndarray, size: int, resize: Any) -> torch.Tensor:
    """uint8 ``[T, 3, size, size]``: frames already at the model's size are only transposed;
    others go through the official transform (``resize``: THWC in, TCHW out)."""
    x = _frames_thwc(frames)
    if tuple(x.shape[1:3]) == (size, size):
        return x.permute(0, 3, 1, 2).contiguous()
    return resize(x, size)


def _edge_pad(x: torch.Tensor, n: int) -> torch.Tensor:
    """Cut or repeat the last frame of ``[T, ...]`` to ``n`` frames."""
    if x.shape[0] == 0:
        raise ValueError("no frames")
    if x.shape[0] >= n:
        return x[:n]
    return torch.cat([x, x[-1:].expand(n - x.shape[0], *x.shape[1:])])


class MMAudioVideoFeatures(ModelMixin, ConfigMixin):
    """CLIP image tower + Synchformer (module docstring)."""

    config_name = "config.json"

    @register_to_config
    def __init__(self, embed_dim: int = 1024, vision_cfg: Mapping[str, Any] | None = None,
                 quick_gelu: bool = True, synchformer_cfg: Mapping[str, Any] | None = None,
                 clip_fps: float = CLIP_FPS, clip_size: int = CLIP_SIZE, sync_fps: float = SYNC_FPS,
                 sync_size: int = SYNC_SIZE, image_mean: tuple[float, ...] = CLIP_MEAN,
                 image_std: tuple[float, ...] = CLIP_STD) -> None:
        super().__init__()
        v = {**DFN5B_VISION, **dict(vision_cfg or {})}
        self.clip_visual = VisionTower(v["image_size"], v["layers"], v["width"], v["head_width"], v["patch_size"],
                                       embed_dim, quick_gelu, v.get("mlp_ratio", 4.0))
        self.synchformer = Synchformer(**dict(synchformer_cfg or {}))

    @classmethod
    def from_components(cls, clip: OpenClip, synchformer: Synchformer) -> "MMAudioVideoFeatures":
        """Assemble from loaded official components (their tensors are shared, not copied)."""
        c = clip.config
        with torch.device("meta"):
            model = cls(embed_dim=c.embed_dim, vision_cfg=dict(c.vision_cfg or {}), quick_gelu=c.quick_gelu,
                        synchformer_cfg=dict(synchformer.config), image_mean=tuple(c.image_mean),
                        image_std=tuple(c.image_std))
        sd = {f"clip_visual.{k}": v for k, v in clip.visual.state_dict().items()}
        sd |= {f"synchformer.{k}": v for k, v in synchformer.state_dict().items()}
        model.load_state_dict(sd, strict=True, assign=True)
        return model.eval()

    # ------------------------------------------------------------------ the pipeline's interface
    def frame_specs(self) -> dict[str, FrameSpec]:
        c = self.config
        # "mmaudio_*": the stage picks and resizes frames exactly as the official load_video
        # (tasks/frames_mmaudio.py), so encode_clip / encode_sync only transpose them.
        return {"clip": FrameSpec(fps=float(c.clip_fps), size=int(c.clip_size), crop="mmaudio_clip"),
                "sync": FrameSpec(fps=float(c.sync_fps), size=int(c.sync_size), crop="mmaudio_sync")}

    def sequence_lengths(self, duration: float) -> dict[str, int]:
        """Clip and sync token counts for a window of ``duration`` s (the official formulas)."""
        return {"clip": clip_seq_len(duration), "sync": sync_seq_len(duration)}

    def _dtype(self) -> torch.dtype:
        return self.clip_visual.conv1.weight.dtype

    @torch.no_grad()
    def encode_clip(self, frames: torch.Tensor | np.ndarray, duration: float) -> torch.Tensor:
        """uint8 frames at 8 fps → ``[1, int(8 d), embed_dim]``."""
        x = _at_size(frames, int(self.config.clip_size), clip_frames_u8)
        x = _edge_pad(x, max(1, clip_seq_len(duration)))
        dev = self.clip_visual.conv1.weight.device
        pixels = x.to(dev, torch.float32) / 255.0
        mean = torch.tensor(self.config.image_mean, device=dev)[:, None, None]
        std = torch.tensor(self.config.image_std, device=dev)[:, None, None]
        feats = self.clip_visual(((pixels - mean) / std).to(self._dtype()))
        return F.normalize(feats, dim=-1)[None]

    @torch.no_grad()
    def encode_sync(self, frames: torch.Tensor | np.ndarray, duration: float) -> torch.Tensor:
        """uint8 frames at 25 fps → ``[1, 8 · S, sync_dim]`` (module docstring for S)."""
        x = _at_size(frames, int(self.config.sync_size), sync_frames_u8)
        seg = int(self.synchformer.config.segment_frames)
        x = _edge_pad(x, max(seg, int(self.config.sync_fps * duration)))
        dev = self.synchformer.device
        video = (x.to(dev, torch.float32) / 255.0 - 0.5) / 0.5
        return self.synchformer.encode(video[None].to(self.synchformer.dtype))
