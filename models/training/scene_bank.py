"""FoleyWorld scenes rendered once into training tensors, and aligned crops of them.

The world is procedural, so rendering many scenes up front (video features at 8 fps and 24/s,
codec latents of every source and of the mixture) keeps the training loop model-bound, not
data-bound. A crop starts on the 8 fps grid, which the 24/s sync grid contains exactly (×3);
the codec's latent grid (31.25/s) is rounded to it (≤ 16 ms off, under a 25 fps video frame).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from models.demo_family.codec import MelCodec
from models.demo_family.features import VideoFeatures
from models.training import foleyworld as fw


@dataclass
class SceneBank:
    """Pre-computed training tensors of many FoleyWorld scenes (the world is procedural, so
    rendering it once up front keeps the training loop model-bound, not data-bound).

    Per scene s: ``clip[s]`` 8 fps grid features ``[T8, 192]`` (the clip projection itself is
    trained), ``sync[s]`` ``[T24, 32]``, ``src_lat[s]`` per-source codec latents ``[n, T, 64]``,
    ``mix_lat[s]`` the soundtrack's latent ``[T, 64]``, ``classes[s]`` and ``captions[s]``.
    """

    duration: float
    clip: list[torch.Tensor] = field(default_factory=list)
    sync: list[torch.Tensor] = field(default_factory=list)
    src_lat: list[torch.Tensor] = field(default_factory=list)
    mix_lat: list[torch.Tensor] = field(default_factory=list)
    classes: list[list[str]] = field(default_factory=list)
    captions: list[list[list[str]]] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.seeds)

    def state(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "SceneBank":
        return cls(**state)


def crop_window(bank: SceneBank, s: int, offset_clip_frames: int, window: float, latent_rate: float) -> dict[str, Any]:
    """Aligned crop of scene ``s`` starting at ``offset_clip_frames``/8 s, ``window`` seconds long.

    Offsets are on the 8 fps grid, which the 24/s sync grid contains exactly (×3); the 31.25/s
    latent grid is rounded (≤ 16 ms off, under a 25 fps video frame).
    """
    o = offset_clip_frames / 8.0
    n_clip, n_sync = int(window * 8 + 1e-6), int(window * 24 + 1e-6)
    n_lat = int(math.ceil(window * latent_rate - 1e-6))
    lat0 = int(round(o * latent_rate))
    lat0 = min(lat0, bank.mix_lat[s].shape[0] - n_lat)
    return {
        "clip": bank.clip[s][offset_clip_frames : offset_clip_frames + n_clip],
        "sync": bank.sync[s][3 * offset_clip_frames : 3 * offset_clip_frames + n_sync],
        "lat": slice(lat0, lat0 + n_lat),
    }


def build_bank(seeds: Sequence[int], duration: float, codec: MelCodec, video_features: VideoFeatures,
               size: int = 64, quiet: bool = True) -> SceneBank:
    """Render FoleyWorld scenes once into training tensors (see :class:`SceneBank`)."""
    bank = SceneBank(duration=duration)
    clip_idx = fw.clip_frame_indices(duration)
    for s in seeds:
        sc = fw.make_scene(int(s), duration, None, size)
        frames = torch.from_numpy(sc.frames)
        with torch.no_grad():
            bank.clip.append(video_features.clip_grid_features(frames[clip_idx], duration)[0].to(torch.bfloat16))
            bank.sync.append(video_features.encode_sync(frames, duration)[0].to(torch.bfloat16))
            waves = torch.from_numpy(np.stack([src.audio for src in sc.sources] + [sc.mixture]))
            lat = codec.encode(waves)
        bank.src_lat.append(lat[:-1].to(torch.bfloat16))
        bank.mix_lat.append(lat[-1].to(torch.bfloat16))
        bank.classes.append([src.cls for src in sc.sources])
        bank.captions.append([list(fw.CAPTIONS[src.cls]) for src in sc.sources])
        bank.seeds.append(int(s))
    return bank
