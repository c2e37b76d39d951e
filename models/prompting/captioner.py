"""Captioners: keyframes of a scene → short prompts naming the sound events it should have.

Two backends share one protocol (``Captioner.caption(frames, k, seed) -> Caption``):

* ``VLMCaptioner`` — any image-text-to-text model that ``AutoProcessor`` +
  ``AutoModelForImageTextToText`` load from a local directory (Qwen2.5-VL is the paper's
  choice, SmolVLM/Idefics3 the CPU-friendly one). It sends ``num_frames`` keyframes spread
  over the scene with ``INSTRUCTION`` through the model's own chat template and cleans the
  answer with ``models.prompting.prompt_text``. Never touches a hub: ``local_files_only=True``.
* ``FoleyCaptioner`` — the default bundle's captioner (``<bundle>/captioner/``): a tiny
  ``VisionEncoderDecoderModel`` (ViT encoder + GPT-2 decoder, both from small configs) with a
  word-level tokenizer, trained on FoleyWorld by ``train_captioner`` to name the sounding
  sources of a window. Its input is one mosaic image: ``MOSAIC_GRID²`` keyframes spread over
  the window, each resized to ``tile`` pixels and tiled, so a single ViT sees how the scene
  evolves (which objects are there, which move) at the cost of one image.

Both record their sampling settings in ``Caption.settings`` (stored with the prompt rows).
Every stochastic step takes an explicit seed. ``load_captioner(path)`` picks the backend from
what the directory holds.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from models.prompting.prompt_text import DEFAULT_K, MAX_WORDS, clean_prompts_detailed

# The paper's style: a handful of short, concrete, audible events, one per line.
INSTRUCTION = (
    "These are {n} frames from one shot of a silent video, in order. List up to {k} distinct "
    "sound events a viewer should hear in this shot, most prominent first. Each must be audible, "
    "short (under {w} words), and name its source and action, e.g. \"Ocean waves crash loudly\" "
    "or \"Sail flaps rhythmically\". One per line, nothing else."
)

CAPTIONER_META = "captioner.json"  # marks a FoleyCaptioner directory
SEPARATOR = ";"  # between sources in the FoleyCaptioner's target text


@dataclass
class Caption:
    """One captioner call: cleaned prompts, the raw text they came from, what was dropped,
    and the settings needed to reproduce it."""

    prompts: list[str]
    raw_text: str
    dropped: list[tuple[str, str]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Captioner(Protocol):
    """Keyframes of one scene (uint8 ``[T, H, W, 3]``) → at most ``k`` prompts."""

    name: str

    def caption(self, frames: np.ndarray, k: int = DEFAULT_K, seed: int = 0) -> Caption: ...


# ============================================================================ frames


def keyframe_indices(num_frames: int, n: int) -> list[int]:
    """``n`` indices spread evenly over ``num_frames``: the centres of n equal segments, so the
    first and last frames (often mid-transition at a cut) are avoided. Fewer frames than n →
    every frame once."""
    if num_frames <= 0:
        raise ValueError("no frames to sample keyframes from")
    n = max(1, min(int(n), num_frames))
    return [min(num_frames - 1, int((i + 0.5) * num_frames / n)) for i in range(n)]


def _check_frames(frames: np.ndarray) -> np.ndarray:
    arr = np.asarray(frames)
    if arr.ndim == 3 and arr.shape[-1] == 3:  # a single image
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.shape[0] == 0:
        raise ValueError(f"expected frames uint8 [T,H,W,3] with T ≥ 1, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        arr = np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    return arr


def keyframes(frames: np.ndarray, n: int) -> np.ndarray:
    """``n`` evenly spread keyframes of ``frames`` (uint8 ``[n', H, W, 3]``, n' ≤ n)."""
    arr = _check_frames(frames)
    return arr[keyframe_indices(arr.shape[0], n)]


def mosaic(frames: np.ndarray, grid: int = 2, tile: int = 32) -> torch.Tensor:
    """``grid²`` keyframes, each area-resized to ``tile``², tiled row-major into one image:
    float ``[3, grid·tile, grid·tile]`` in [−1, 1] (ViT's usual 0.5/0.5 normalisation)."""
    kf = keyframes(frames, grid * grid)
    x = torch.from_numpy(np.ascontiguousarray(kf)).permute(0, 3, 1, 2).float() / 255.0
    x = F.interpolate(x, size=(tile, tile), mode="area")
    if x.shape[0] < grid * grid:  # short clip: repeat the last keyframe
        x = torch.cat([x, x[-1:].expand(grid * grid - x.shape[0], -1, -1, -1)], dim=0)
    rows = [torch.cat(list(x[r * grid : (r + 1) * grid]), dim=2) for r in range(grid)]
    return torch.cat(rows, dim=1) * 2.0 - 1.0


@contextlib.contextmanager
def _seeded(seed: int):
    """Seed torch's global RNG for a generate() call without disturbing the caller's stream
    (transformers' sampling draws from the global generator)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed) % (2**63 - 1))
        yield


# ============================================================================ VLM backend


@dataclass(frozen=True)
class GenerationSettings:
    """What decides a VLM's answer besides the frames: recorded with every prompt row."""

    max_new_tokens: int = 96
    do_sample: bool = False
    temperature: float = 0.7
    top_p: float = 0.9
    repetition_penalty: float = 1.05
    num_frames: int = 4
    image_longest_edge: int | None = None  # None: the processor's own size

    def generate_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"max_new_tokens": int(self.max_new_tokens), "do_sample": bool(self.do_sample),
                              "repetition_penalty": float(self.repetition_penalty)}
        if self.do_sample:
            kw.update(temperature=float(self.temperature), top_p=float(self.top_p))
        return kw


class VLMCaptioner:
    """A transformers image-text-to-text model from a local directory."""

    def __init__(self, model_dir: str | os.PathLike, settings: GenerationSettings | None = None,
                 device: str = "cpu", dtype: torch.dtype | None = None) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.model_dir = Path(model_dir)
        if not self.model_dir.is_dir():
            raise FileNotFoundError(f"captioner directory not found: {self.model_dir}")
        self.settings = settings or GenerationSettings()
        self.device = torch.device(device)
        self.processor = AutoProcessor.from_pretrained(self.model_dir, local_files_only=True)
        self.model = AutoModelForImageTextToText.from_pretrained(
            self.model_dir, local_files_only=True, **({"dtype": dtype} if dtype is not None else {})
        ).to(self.device).eval()
        self.name = f"vlm:{self.model_dir.name}:{type(self.model).__name__}"

    def messages(self, n_images: int, k: int) -> list[dict[str, Any]]:
        """The chat: one user turn with the keyframes first, then the instruction."""
        content: list[dict[str, Any]] = [{"type": "image"} for _ in range(n_images)]
        content.append({"type": "text", "text": INSTRUCTION.format(n=n_images, k=k, w=MAX_WORDS)})
        return [{"role": "user", "content": content}]

    def build_inputs(self, frames: np.ndarray, k: int) -> tuple[str, dict[str, torch.Tensor]]:
        """Chat-templated prompt text and processor tensors for the keyframes of ``frames``."""
        from PIL import Image

        kf = keyframes(frames, self.settings.num_frames)
        images = [Image.fromarray(f) for f in kf]
        if self.settings.image_longest_edge:
            e = int(self.settings.image_longest_edge)
            images = [im.resize((max(1, round(im.width * e / max(im.size))),
                                 max(1, round(im.height * e / max(im.size))))) for im in images]
        prompt = self.processor.apply_chat_template(self.messages(len(images), k), add_generation_prompt=True)
        inputs = self.processor(text=prompt, images=[images], return_tensors="pt")
        return prompt, {key: v.to(self.device) if isinstance(v, torch.Tensor) else v for key, v in inputs.items()}

    @torch.no_grad()
    def generate_text(self, frames: np.ndarray, k: int = DEFAULT_K, seed: int = 0) -> tuple[str, int]:
        """The model's raw answer (new tokens only) and how many tokens it generated."""
        _, inputs = self.build_inputs(frames, k)
        n_in = int(inputs["input_ids"].shape[1])
        with _seeded(seed):
            out = self.model.generate(**inputs, **self.settings.generate_kwargs())
        new = out[:, n_in:]
        text = self.processor.batch_decode(new, skip_special_tokens=True)[0]
        return text, int(new.shape[1])

    def caption(self, frames: np.ndarray, k: int = DEFAULT_K, seed: int = 0) -> Caption:
        t0 = time.perf_counter()
        text, n_new = self.generate_text(frames, k, seed)
        cleaned = clean_prompts_detailed(text, k=k)
        settings = {"backend": "vlm", "model": self.name, "seed": int(seed), "k": int(k),
                    "generated_tokens": n_new, "seconds": round(time.perf_counter() - t0, 3),
                    **asdict(self.settings)}
        return Caption(cleaned.prompts, text, cleaned.dropped, settings)


# ============================================================================ FoleyWorld captioner


@dataclass(frozen=True)
class FoleyCaptionerConfig:
    """Shapes of the default captioner (tiny on purpose: it ships inside the bundle)."""

    grid: int = 2
    tile: int = 32
    patch: int = 8
    hidden: int = 64
    layers: int = 2
    heads: int = 2
    max_target_tokens: int = 24

    @property
    def image_size(self) -> int:
        return self.grid * self.tile


def build_caption_tokenizer(texts: Sequence[str]):
    """Word-level tokenizer over the words of ``texts`` plus the separator, with GPT-2 style
    special tokens; ids are assigned in sorted word order, so they do not depend on text order."""
    import re

    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = sorted({w for t in texts for w in re.findall(r"[a-z0-9']+|[^\sa-z0-9']", t.lower())} | {SEPARATOR})
    vocab = {"[PAD]": 0, "[UNK]": 1, "[BOS]": 2, "[EOS]": 3}
    for w in words:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(r"[^a-z0-9']"), behavior="isolated")]
    )
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   bos_token="[BOS]", eos_token="[EOS]")


def build_caption_model(cfg: FoleyCaptionerConfig, vocab_size: int, pad_id: int, bos_id: int, eos_id: int,
                        seed: int):
    """A random-init ``VisionEncoderDecoderModel`` (ViT + GPT-2 with cross-attention)."""
    from transformers import GPT2Config, GPT2LMHeadModel, ViTConfig, ViTModel, VisionEncoderDecoderModel

    torch.manual_seed(seed)
    enc = ViTModel(ViTConfig(image_size=cfg.image_size, patch_size=cfg.patch, hidden_size=cfg.hidden,
                             num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads,
                             intermediate_size=2 * cfg.hidden, hidden_dropout_prob=0.0,
                             attention_probs_dropout_prob=0.0))
    dec = GPT2LMHeadModel(GPT2Config(vocab_size=vocab_size, n_positions=cfg.max_target_tokens + 2,
                                     n_embd=cfg.hidden, n_layer=cfg.layers, n_head=cfg.heads,
                                     add_cross_attention=True, bos_token_id=bos_id, eos_token_id=eos_id,
                                     pad_token_id=pad_id, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0))
    model = VisionEncoderDecoderModel(encoder=enc, decoder=dec)
    model.config.decoder_start_token_id = bos_id
    model.config.pad_token_id = pad_id
    model.config.eos_token_id = eos_id
    model.generation_config.decoder_start_token_id = bos_id
    model.generation_config.pad_token_id = pad_id
    model.generation_config.eos_token_id = eos_id
    return model


class FoleyCaptioner:
    """The default bundle's captioner (``<bundle>/captioner/``); greedy decoding, so the seed
    only matters if sampling is switched on."""

    def __init__(self, model_dir: str | os.PathLike, device: str = "cpu", do_sample: bool = False,
                 max_new_tokens: int | None = None) -> None:
        from transformers import PreTrainedTokenizerFast, VisionEncoderDecoderModel

        self.model_dir = Path(model_dir)
        meta = json.loads((self.model_dir / CAPTIONER_META).read_text())
        self.cfg = FoleyCaptionerConfig(**meta["config"])
        self.meta = meta
        self.tokenizer = PreTrainedTokenizerFast.from_pretrained(self.model_dir, local_files_only=True)
        self.model = VisionEncoderDecoderModel.from_pretrained(self.model_dir, local_files_only=True).eval()
        self.device = torch.device(device)
        self.model.to(self.device)
        self.do_sample = do_sample
        self.max_new_tokens = int(max_new_tokens or self.cfg.max_target_tokens)
        self.name = f"foleyworld:{self.model_dir.parent.name or self.model_dir.name}"

    @torch.no_grad()
    def generate_text(self, frames_batch: Sequence[np.ndarray], seed: int = 0) -> list[str]:
        pix = torch.stack([mosaic(f, self.cfg.grid, self.cfg.tile) for f in frames_batch]).to(self.device)
        with _seeded(seed):
            out = self.model.generate(pixel_values=pix, max_new_tokens=self.max_new_tokens,
                                      do_sample=self.do_sample, num_beams=1)
        return self.tokenizer.batch_decode(out, skip_special_tokens=True)

    def caption(self, frames: np.ndarray, k: int = DEFAULT_K, seed: int = 0) -> Caption:
        text = self.generate_text([frames], seed)[0]
        # Our own vocabulary is all sound words; the non-sound filter is for chatty VLMs.
        cleaned = clean_prompts_detailed(text, k=k, drop_non_sounds=False)
        settings = {"backend": "foleyworld", "model": self.name, "seed": int(seed), "k": int(k),
                    "do_sample": self.do_sample, "max_new_tokens": self.max_new_tokens,
                    "num_frames": self.cfg.grid ** 2, "tile": self.cfg.tile}
        return Caption(cleaned.prompts, text, cleaned.dropped, settings)


def load_captioner(path: str | os.PathLike, device: str = "cpu", **kwargs: Any) -> Captioner:
    """A captioner from a local directory: a bundle (uses ``<bundle>/captioner``), a
    FoleyCaptioner directory, or any transformers VLM directory."""
    p = Path(path)
    if (p / "captioner").is_dir():
        p = p / "captioner"
    if (p / CAPTIONER_META).is_file():
        return FoleyCaptioner(p, device=device, **kwargs)
    return VLMCaptioner(p, device=device, **kwargs)
