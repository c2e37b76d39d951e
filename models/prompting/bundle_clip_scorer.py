"""Salience from an MMAudio-family bundle's own CLIP: the paper orders a scene's prompts by
audio-visual similarity, and a converted bundle carries the DFN5B CLIP towers that condition
the network, so its prompts are ordered by the same model.

For keyframes f_1 … f_n of a scene (n = ``num_frames`` spread evenly over it, ``keyframes``)
and a prompt c:

    v   = normalise( mean_i normalise( CLIP_image( standardise( resize_384(f_i) ) ) ) )
    t_c = normalise( CLIP_text(tokens(c))[eot] @ text_projection )      (open_clip's pooled embedding)
    score(c) = t_c · v                                                  (cosine, in [−1, 1])

The image tower is the bundle's ``video_features.clip_visual`` with the official pixel path
(squash to 384 × 384, bicubic antialiased, OpenAI mean / std: ``MMAudioVideoFeatures.encode_clip``);
the text tower is ``text_encoder.encode_pooled``. ``embed_text`` (the same t_c) is what the
prompt stage judges "same sound?" with (``models.prompting.prompt_meaning``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from models.mmaudio_family.video_preprocess import clip_frames_u8
from models.prompting.captioner import keyframes

VIDEO_FEATURES_CLASS = "MMAudioVideoFeatures"
TEXT_ENCODER_CLASS = "ClipTextEncoder"
# Paraphrases of one sound sit above this pooled-text cosine. A guess for DFN5B (no real weights
# here to calibrate on); ``BundleClipScorer(same_sound_threshold=...)`` overrides it.
DEFAULT_SAME_SOUND = 0.9


def is_mmaudio_bundle(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a bundle whose video features and text encoder are the MMAudio family's."""
    index = Path(path) / "model_index.json"
    try:
        meta = json.loads(index.read_text())
    except (OSError, ValueError):
        return False
    return (list(meta.get("video_features") or [])[-1:] == [VIDEO_FEATURES_CLASS]
            and list(meta.get("text_encoder") or [])[-1:] == [TEXT_ENCODER_CLASS])


def clip_image_size(path: str | os.PathLike) -> int | None:
    """The CLIP input size of an MMAudio-family bundle (384 for DFN5B), None for other bundles."""
    if not is_mmaudio_bundle(path):
        return None
    cfg = json.loads((Path(path) / "video_features" / "config.json").read_text())
    return int(cfg.get("clip_size", 384))


class BundleClipScorer:
    """``Scorer`` over an MMAudio-family bundle's CLIP towers (module docstring)."""

    def __init__(self, bundle_dir: str | os.PathLike, num_frames: int = 4, device: str = "cpu",
                 same_sound_threshold: float = DEFAULT_SAME_SOUND) -> None:
        # the MMAudio family's towers load only for a converted bundle
        from models.mmaudio_family.text_encoder import ClipTextEncoder
        from models.mmaudio_family.video_features import MMAudioVideoFeatures  # (same reason)

        self.bundle_dir = Path(bundle_dir)
        if not is_mmaudio_bundle(self.bundle_dir):
            raise ValueError(f"{self.bundle_dir} is not an MMAudio-family bundle (model_index.json names "
                             f"no {VIDEO_FEATURES_CLASS} / {TEXT_ENCODER_CLASS})")
        self.video = MMAudioVideoFeatures.from_pretrained(self.bundle_dir / "video_features").to(device).eval()
        self.text = ClipTextEncoder.from_pretrained(self.bundle_dir / "text_encoder").to(device).eval()
        self.num_frames = int(num_frames)
        self.keyframe_size = int(self.video.config.clip_size)
        self.same_sound_threshold = float(same_sound_threshold)
        self.name = f"mmaudio-clip:{self.bundle_dir.name}"

    @torch.no_grad()
    def image_embedding(self, frames: np.ndarray) -> torch.Tensor:
        """``v`` of the module docstring, ``[embed_dim]``."""
        picked = keyframes(frames, self.num_frames)
        # Squashed to the CLIP size here: encode_clip's own resize branch is handed frames already
        # in [T, 3, H, W] and rejects them (video_features.py), so it only ever sees model-size frames.
        square = clip_frames_u8(picked, self.keyframe_size).permute(0, 2, 3, 1)
        # encode_clip keeps int(8 d) frames: d = n / 8 keeps exactly the n keyframes.
        per_frame = self.video.encode_clip(square, len(picked) / float(self.video.config.clip_fps))[0]
        return torch.nn.functional.normalize(per_frame.float().mean(0), dim=-1)

    @torch.no_grad()
    def embed_text(self, prompts: Sequence[str]) -> torch.Tensor:
        """``t_c`` per prompt, ``[N, embed_dim]``, L2-normalised."""
        return self.text.encode_pooled(list(prompts)).float()

    def knows(self, prompt: str) -> bool:
        """CLIP's byte-level BPE reads any text: every prompt is in its vocabulary."""
        return True

    def score(self, frames: np.ndarray, prompts: Sequence[str]) -> list[float]:
        if not prompts:
            return []
        return [float(c) for c in self.embed_text(prompts) @ self.image_embedding(frames)]
