"""Text–video (and text–audio) similarity: orders prompts by salience, and tells which sounds
the original soundtrack already has.

The paper orders prompts by ImageBind text–video similarity. Here:

* ``ClipScorer`` — a real CLIP (``CLIPModel`` + its processor) from a local directory, when
  configured: score = cosine(text embedding, mean of the keyframes' image embeddings). No audio.
* ``FoleyScorer`` — the default bundle's scorer (``<bundle>/scorer/``): a tiny
  ``transformers.CLIPModel`` built from a small config (ViT over the same keyframe mosaic as the
  captioner, text transformer over a word-level tokenizer), plus a tiny audio tower (log-mel →
  conv stack → mean+max pooling → projection) into the same embedding space. Trained on
  FoleyWorld with a sigmoid (SigLIP-style) loss rather than CLIP's softmax, because a scene has
  several sources and a caption matches every scene that contains its class:

      ℓ = −Σ_ij log σ( y_ij · (s · cos(e_i, t_j) + b) ),  y_ij = +1 if class(t_j) ∈ scene_i else −1

  so σ(s·cos + b) reads as a probability that the sound is in the scene (video) or already
  in the soundtrack (audio), which is what the stage thresholds.

``score`` returns the raw cosine (for ordering, stored per prompt); ``presence`` the
probability. Training (``train_scorer``) is deterministic given (seed, threads, steps) and
resumable like ``models.prompting.captioner.train_captioner``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.prompting.captioner import build_caption_tokenizer, keyframes, mosaic
from models.prompting.scorer_audio import log_mel_16k

SCORER_META = "scorer.json"
AUDIO_SR = 16000


@runtime_checkable
class Scorer(Protocol):
    name: str

    def score(self, frames: np.ndarray, prompts: Sequence[str]) -> list[float]: ...


def order_by_score(prompts: Sequence[str], scores: Sequence[float]) -> list[tuple[str, float]]:
    """Descending score; ties keep the input order (Python's sort is stable), so the ordering
    is reproducible and the captioner's own ranking breaks ties."""
    pairs = list(zip(prompts, (float(s) for s in scores)))
    return sorted(pairs, key=lambda ps: -ps[1])


# ============================================================================ real CLIP


class ClipScorer:
    """A CLIP checkpoint from a local directory (e.g. openai/clip-vit-base-patch32 saved offline)."""

    def __init__(self, model_dir: str | os.PathLike, num_frames: int = 4, device: str = "cpu") -> None:
        from transformers import AutoTokenizer, CLIPImageProcessorPil, CLIPModel

        self.model_dir = Path(model_dir)
        if not self.model_dir.is_dir():
            raise FileNotFoundError(f"scorer directory not found: {self.model_dir}")
        # The PIL image processor: the default (fast) one needs torchvision, which we do not ship.
        self.image_processor = CLIPImageProcessorPil.from_pretrained(self.model_dir, local_files_only=True)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
        self.model = CLIPModel.from_pretrained(self.model_dir, local_files_only=True).to(device).eval()
        self.device = torch.device(device)
        self.num_frames = num_frames
        self.name = f"clip:{self.model_dir.name}"

    @torch.no_grad()
    def score(self, frames: np.ndarray, prompts: Sequence[str]) -> list[float]:
        if not prompts:
            return []
        from PIL import Image

        images = [Image.fromarray(f) for f in keyframes(frames, self.num_frames)]
        pix = self.image_processor(images=images, return_tensors="pt")["pixel_values"].to(self.device)
        img = F.normalize(_as_tensor(self.model.get_image_features(pixel_values=pix)), dim=-1).mean(0)
        return [float(v) for v in self.embed_text(prompts) @ F.normalize(img, dim=-1)]

    @torch.no_grad()
    def embed_text(self, prompts: Sequence[str]) -> torch.Tensor:
        """L2-normalised text embeddings ``[N, D]`` (what "same sound?" is judged with)."""
        tok = self.tokenizer(list(prompts), padding=True, truncation=True, return_tensors="pt").to(self.device)
        return F.normalize(_as_tensor(self.model.get_text_features(**tok)), dim=-1)

    def knows(self, prompt: str) -> bool:
        return True  # a BPE vocabulary reads any text


def _as_tensor(out: Any) -> torch.Tensor:
    """``get_*_features`` returns a tensor in some versions, a model output in others."""
    if isinstance(out, torch.Tensor):
        return out
    for key in ("pooler_output", "image_embeds", "text_embeds"):
        val = getattr(out, key, None)
        if isinstance(val, torch.Tensor):
            return val
    return out[0]


# ============================================================================ FoleyWorld scorer


@dataclass(frozen=True)
class FoleyScorerConfig:
    grid: int = 2
    tile: int = 32
    patch: int = 8
    hidden: int = 64
    layers: int = 2
    heads: int = 2
    embed: int = 64
    text_len: int = 16
    n_fft: int = 1024
    hop: int = 512
    n_mels: int = 64


def audio_log_mel(wave: np.ndarray, sample_rate: int, cfg: FoleyScorerConfig) -> torch.Tensor:
    """``[n_mels, frames]`` log-mel at 16 kHz (20–8000 Hz, HTK bands, log(x + 1e-5))."""
    return log_mel_16k(wave, sample_rate, cfg.n_fft, cfg.hop, cfg.n_mels)


class AudioTower(nn.Module):
    """log-mel ``[B, n_mels, T]`` → ``[B, embed]``: 3 strided 1-D convs over time, mean+max pool."""

    def __init__(self, n_mels: int, hidden: int, embed: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(n_mels, affine=False, track_running_stats=True)
        self.convs = nn.Sequential(
            nn.Conv1d(n_mels, hidden, 5, padding=2), nn.GELU(),
            nn.Conv1d(hidden, hidden, 5, stride=2, padding=2), nn.GELU(),
            nn.Conv1d(hidden, hidden, 5, stride=2, padding=2), nn.GELU(),
        )
        self.proj = nn.Linear(2 * hidden, embed)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        h = self.convs(self.norm(mel))
        return self.proj(torch.cat([h.mean(-1), h.amax(-1)], dim=-1))


class FoleyScorerModel(nn.Module):
    """CLIPModel (vision + text) + audio tower + the sigmoid loss's scale and bias per modality."""

    def __init__(self, cfg: FoleyScorerConfig, vocab_size: int, pad_id: int, bos_id: int, eos_id: int) -> None:
        super().__init__()
        from transformers import CLIPConfig, CLIPModel

        clip_cfg = CLIPConfig(
            text_config=dict(vocab_size=vocab_size, hidden_size=cfg.hidden, intermediate_size=2 * cfg.hidden,
                             num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads,
                             max_position_embeddings=cfg.text_len, pad_token_id=pad_id, bos_token_id=bos_id,
                             eos_token_id=eos_id),
            vision_config=dict(image_size=cfg.grid * cfg.tile, patch_size=cfg.patch, hidden_size=cfg.hidden,
                               intermediate_size=2 * cfg.hidden, num_hidden_layers=cfg.layers,
                               num_attention_heads=cfg.heads),
            projection_dim=cfg.embed,
        )
        self.clip = CLIPModel(clip_cfg)
        self.audio = AudioTower(cfg.n_mels, cfg.hidden, cfg.embed)
        # SigLIP's initialisation: scale 10, bias −10 (most pairs are negatives).
        self.scale = nn.Parameter(torch.tensor([math.log(10.0), math.log(10.0)]))
        self.bias = nn.Parameter(torch.tensor([-10.0, -10.0]) / 2)

    def text(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return F.normalize(_as_tensor(self.clip.get_text_features(input_ids=ids, attention_mask=mask)), dim=-1)

    def video(self, pix: torch.Tensor) -> torch.Tensor:
        return F.normalize(_as_tensor(self.clip.get_image_features(pixel_values=pix)), dim=-1)

    def sound(self, mel: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.audio(mel), dim=-1)

    def logits(self, cos: torch.Tensor, modality: int) -> torch.Tensor:
        return cos * self.scale[modality].exp() + self.bias[modality]


def build_text_tokenizer(texts: Sequence[str], text_len: int):
    """The captioner's word-level tokenizer plus [BOS] … [EOS] around every text (CLIP pools the
    text at its [EOS] token), padded to ``text_len``."""
    from tokenizers.processors import TemplateProcessing

    tok = build_caption_tokenizer(texts)
    backend = tok.backend_tokenizer
    backend.post_processor = TemplateProcessing(
        single="[BOS] $A [EOS]", special_tokens=[("[BOS]", tok.bos_token_id), ("[EOS]", tok.eos_token_id)])
    return tok


def encode_text(tokenizer, texts: Sequence[str], text_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    enc = tokenizer(list(texts), padding="max_length", truncation=True, max_length=text_len, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    # Truncation can cut off [EOS]; put it back at the last kept position.
    last = mask.sum(1) - 1
    ids[torch.arange(ids.shape[0]), last] = tokenizer.eos_token_id
    return ids, mask


class FoleyScorer:
    """The default bundle's scorer (``<bundle>/scorer/``)."""

    def __init__(self, model_dir: str | os.PathLike, device: str = "cpu") -> None:
        from safetensors.torch import load_file
        from transformers import PreTrainedTokenizerFast

        self.model_dir = Path(model_dir)
        meta = json.loads((self.model_dir / SCORER_META).read_text())
        self.cfg = FoleyScorerConfig(**meta["config"])
        self.meta = meta
        self.tokenizer = PreTrainedTokenizerFast.from_pretrained(self.model_dir, local_files_only=True)
        self.model = FoleyScorerModel(self.cfg, len(self.tokenizer), self.tokenizer.pad_token_id,
                                      self.tokenizer.bos_token_id, self.tokenizer.eos_token_id)
        self.model.load_state_dict(load_file(str(self.model_dir / "model.safetensors")))
        self.model.to(device).eval()
        self.device = torch.device(device)
        self.name = f"foleyworld-scorer:{self.model_dir.parent.name or self.model_dir.name}"

    def _text(self, prompts: Sequence[str]) -> torch.Tensor:
        ids, mask = encode_text(self.tokenizer, prompts, self.cfg.text_len)
        return self.model.text(ids.to(self.device), mask.to(self.device))

    @torch.no_grad()
    def score(self, frames: np.ndarray, prompts: Sequence[str]) -> list[float]:
        """cos(text, video) per prompt, video = the keyframe mosaic of ``frames``."""
        if not prompts:
            return []
        v = self.model.video(mosaic(frames, self.cfg.grid, self.cfg.tile)[None].to(self.device))[0]
        return [float(c) for c in self._text(prompts) @ v]

    @torch.no_grad()
    def embed_text(self, prompts: Sequence[str]) -> torch.Tensor:
        """L2-normalised text embeddings ``[N, embed]`` (what "same sound?" is judged with)."""
        return self._text(prompts)

    def knows(self, prompt: str) -> bool:
        """Whether at least half the prompt's words are in the word-level vocabulary: the text
        tower maps every unknown word to one [UNK] vector, so its verdict on a prompt made of
        them ("A car horn honks") says nothing."""
        words = [w for w in prompt.lower().split() if w.strip(".,;:!?'\"") not in {"a", "an", "the"}]
        unk = self.tokenizer.unk_token_id
        known = sum(self.tokenizer.convert_tokens_to_ids(w.strip(".,;:!?'\"")) != unk for w in words)
        return bool(words) and 2 * known >= len(words)

    @torch.no_grad()
    def video_presence(self, frames: np.ndarray, prompts: Sequence[str]) -> list[float]:
        cos = torch.tensor(self.score(frames, prompts))
        return [float(p) for p in torch.sigmoid(self.model.logits(cos, 0))]

    @torch.no_grad()
    def audio_presence(self, audio: np.ndarray, sample_rate: int, prompts: Sequence[str]) -> list[float]:
        """P(the prompt's sound is already in ``audio``) per prompt."""
        if not prompts:
            return []
        mel = audio_log_mel(audio, sample_rate, self.cfg)[None].to(self.device)
        a = self.model.sound(mel)[0]
        cos = self._text(prompts) @ a
        return [float(p) for p in torch.sigmoid(self.model.logits(cos, 1))]


def load_scorer(path: str | os.PathLike, device: str = "cpu") -> Scorer:
    """A bundle (uses ``<bundle>/scorer``), a FoleyScorer directory, an MMAudio-family bundle
    (its own CLIP towers: ``BundleClipScorer``), or a transformers CLIP directory."""
    p = Path(path)
    if (p / "scorer").is_dir():
        p = p / "scorer"
    if (p / SCORER_META).is_file():
        return FoleyScorer(p, device=device)
    # bundle_clip_scorer imports this module (Scorer, order_by_score): imported on use
    from models.prompting.bundle_clip_scorer import BundleClipScorer, is_mmaudio_bundle

    if is_mmaudio_bundle(p):
        return BundleClipScorer(p, device=device)
    return ClipScorer(p, device=device)
