"""Captioners: keyframes of a scene → short prompts naming the sound events it should have.

Two backends share one protocol (``Captioner.caption(frames, k, seed) -> Caption``):

* ``VLMCaptioner`` — any image-text-to-text model that ``AutoProcessor`` +
  ``AutoModelForImageTextToText`` load from a local directory (Qwen2.5-VL is the paper's
  choice, SmolVLM/Idefics3 the CPU-friendly one). It sends ``num_frames`` keyframes spread
  over the scene with ``INSTRUCTION`` through the model's own chat template and cleans the
  answer with ``models.prompt_text``. Never touches a hub: ``local_files_only=True``.
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
import functools
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from models.prompt_text import DEFAULT_K, MAX_WORDS, clean_prompts_detailed

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


# ============================================================================ training


def _step_generator(seed: int, tag: str, step: int) -> torch.Generator:
    """Independent, reproducible randomness per (seed, purpose, step): a resumed run draws
    exactly what an uninterrupted one would."""
    t = sum((i + 1) * ord(c) for i, c in enumerate(tag))
    return torch.Generator().manual_seed((seed * 1_000_003 + t * 7919 + step) % (2**63 - 1))


def _split_seeds(split: Any, limit: int | None = None) -> list[int]:
    seeds = [int(s) for s in (split if not isinstance(split, int) else range(split))]
    return seeds[:limit] if limit else seeds


def log_mel_16k(wave: np.ndarray, sample_rate: int, n_fft: int = 1024, hop: int = 512, n_mels: int = 64) -> torch.Tensor:
    """``[n_mels, frames]`` log-mel of a wave resampled to 16 kHz (20–8000 Hz HTK bands,
    log(x + 1e-5)); the scorer's audio input."""
    from models.audio_taggers import to_mono_16k
    from models.codec import mel_filterbank

    x = torch.from_numpy(to_mono_16k(wave, sample_rate))
    if x.numel() < n_fft:
        x = F.pad(x, (0, n_fft - x.numel()))
    spec = torch.stft(x, n_fft, hop, window=torch.hann_window(n_fft), center=True, return_complex=True).abs()
    fb = mel_filterbank(16000, n_fft, n_mels, 20.0, 8000.0).to(spec.dtype)
    return torch.log(fb @ spec + 1e-5)


def scene_sources(seed: int) -> int:
    """How many sources (1–3) the trainers' scene for ``seed`` has: drawn from the seed, so a
    bank is a pure function of its seeds."""
    return 1 + int(np.random.default_rng([int(seed), 17]).integers(0, 3))


def scene_sample_rate(scene: Any) -> int:
    """A FoleyWorld scene's audio rate: the scene's own attribute, else the module's constant,
    else the default bundle's 16 kHz."""
    from models import foleyworld as fw

    return int(getattr(scene, "sample_rate", None) or getattr(fw, "SAMPLE_RATE", None) or 16000)


@functools.lru_cache(maxsize=2)
def foleyworld_bank(seeds: tuple[int, ...], tile: int = 32, n_keep: int = 8, size: int = 64, duration: float = 8.0,
                    mel: tuple[int, int, int] = (1024, 512, 64)) -> dict[str, Any]:
    """FoleyWorld scenes reduced to what the captioner and scorer train on: keyframes
    ``[N, n_keep, 3, tile, tile]`` uint8, mixture log-mels ``[N, n_mels, frames]`` and the
    sorted source classes per scene. Cached per process, so the bundle trainer renders the
    scenes once for both components."""
    from models import foleyworld as fw

    kfs, mels, classes = [], [], []
    for s in seeds:
        scene = fw.make_scene(int(s), duration, scene_sources(s), size)
        kf = keyframes(scene.frames, n_keep)
        x = torch.from_numpy(np.ascontiguousarray(kf)).permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=(tile, tile), mode="area").round().clamp(0, 255).to(torch.uint8)
        if x.shape[0] < n_keep:
            x = torch.cat([x, x[-1:].expand(n_keep - x.shape[0], -1, -1, -1)])
        kfs.append(x)
        sr = scene_sample_rate(scene)
        mels.append(log_mel_16k(np.asarray(scene.mixture), sr, *mel))
        classes.append(sorted({src.cls for src in scene.sources}, key=lambda c: fw.CLASSES.index(c)))
    t_min = min(m.shape[1] for m in mels)
    return {"keyframes": torch.stack(kfs), "mels": torch.stack([m[:, :t_min] for m in mels]), "classes": classes}


def _bank_mosaics(bank: torch.Tensor, grid: int, gen: torch.Generator | None) -> torch.Tensor:
    """Mosaics from a keyframe bank ``[N, n_keep, 3, t, t]``: evenly spread keyframes, or with a
    generator, a random sorted subset (augmentation: the captioner must not depend on exactly
    which instants it sees)."""
    n, n_keep = bank.shape[:2]
    m = grid * grid
    if gen is None:
        idx = torch.tensor(keyframe_indices(n_keep, m)).expand(n, m)
    else:
        idx = torch.sort(torch.rand(n, n_keep, generator=gen).argsort(dim=1)[:, :m], dim=1).values
    tiles = torch.gather(bank, 1, idx[:, :, None, None, None].expand(-1, -1, *bank.shape[2:])).float() / 255.0
    rows = [torch.cat([tiles[:, r * grid + c] for c in range(grid)], dim=3) for r in range(grid)]
    return torch.cat(rows, dim=2) * 2.0 - 1.0


def sample_caption(cls: str, rng: np.random.Generator) -> str:
    """One paraphrase of a class's caption. ``foleyworld.captions_for(cls, rng)`` may hand back
    one caption or the list of them; either way the choice is driven by ``rng``."""
    from models import foleyworld as fw

    got = fw.captions_for(cls, rng)
    if isinstance(got, str):
        return got
    options = list(got)
    return str(options[int(rng.integers(0, len(options)))])


def all_captions(classes: Sequence[str], seed: int, draws: int = 16) -> list[str]:
    """Every paraphrase the trainers may draw (vocabulary for the word-level tokenizers)."""
    from models import foleyworld as fw

    rng = np.random.default_rng(seed)
    out: list[str] = []
    for c in classes:
        for _ in range(draws):
            got = fw.captions_for(c, rng)
            out.extend([got] if isinstance(got, str) else list(got))
    return out


def captioner_target(classes: Sequence[str], rng: np.random.Generator) -> str:
    """Training text for a scene: one caption per source joined by the separator, sources in
    class order (the order carries no meaning; salience is the scorer's job)."""
    return f" {SEPARATOR} ".join(sample_caption(c, rng) for c in classes)


def train_captioner(out_dir: str | os.PathLike, steps: int = 1500, seed: int = 0, threads: int = 2,
                    n_train: int = 400, batch: int = 32, lr: float = 2e-3, log_every: int = 50,
                    cfg: FoleyCaptionerConfig | None = None, quiet: bool = True,
                    stop_after: int | None = None, eval_scenes: int = 60) -> dict[str, Any]:
    """Train the default captioner on FoleyWorld train seeds and save it to ``out_dir``.

    Deterministic given (seed, threads, steps): weights are seeded, each step's batch and
    augmentation come from a generator seeded by (seed, step). Resumable: a checkpoint in
    ``out_dir/_ckpt.pt`` is written every ``log_every`` steps and picked up by a rerun with the
    same arguments (``stop_after`` interrupts on purpose). ``out_dir/train_log.json`` holds the
    loss curve and, unless ``eval_scenes`` is 0, recall on that many held-out test seeds.
    """
    from models import foleyworld as fw

    cfg = cfg or FoleyCaptionerConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(int(threads))
    t0 = time.perf_counter()
    args = {"steps": steps, "seed": seed, "threads": threads, "n_train": n_train, "batch": batch, "lr": lr,
            "config": asdict(cfg)}

    train_seeds = _split_seeds(fw.SPLITS["train"], n_train)
    data = foleyworld_bank(tuple(train_seeds), tile=cfg.tile)
    bank, classes = data["keyframes"], data["classes"]
    tokenizer = build_caption_tokenizer(all_captions(fw.CLASSES, seed))
    model = build_caption_model(cfg, len(tokenizer), tokenizer.pad_token_id, tokenizer.bos_token_id,
                                tokenizer.eos_token_id, seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(1, steps)))))
    log: list[dict[str, float]] = []
    start = 0
    ckpt = out / "_ckpt.pt"
    if ckpt.is_file():
        state = torch.load(ckpt, weights_only=False)
        if state.get("args") == args:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["opt"])
            sched.load_state_dict(state["sched"])
            log, start = state["log"], int(state["step"])

    model.train()
    for step in range(start, steps):
        gen = _step_generator(seed, "captioner", step)
        idx = torch.randint(0, len(classes), (batch,), generator=gen)
        pix = _bank_mosaics(bank[idx], cfg.grid, gen)
        rng = np.random.default_rng([seed, step])
        texts = [captioner_target(classes[int(i)], rng) for i in idx]
        enc = tokenizer(texts, padding="max_length", truncation=True, max_length=cfg.max_target_tokens - 1,
                        return_tensors="pt")
        ids = enc["input_ids"]
        # labels = text + [EOS], padding ignored; the model shifts them right behind [BOS].
        lengths = enc["attention_mask"].sum(1)
        labels = torch.full((batch, cfg.max_target_tokens), -100, dtype=torch.long)
        for b in range(batch):
            n = int(lengths[b])
            labels[b, :n] = ids[b, :n]
            labels[b, n] = tokenizer.eos_token_id
        loss = model(pixel_values=pix, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if (step + 1) % log_every == 0 or step + 1 == steps:
            log.append({"step": step + 1, "loss": round(loss.item(), 5), "lr": float(sched.get_last_lr()[0])})
            if not quiet:
                print(f"captioner step {step + 1}/{steps} loss {loss.item():.4f}", flush=True)
            torch.save({"args": args, "model": model.state_dict(), "opt": opt.state_dict(),
                        "sched": sched.state_dict(), "log": log, "step": step + 1}, ckpt.with_suffix(".tmp"))
            os.replace(ckpt.with_suffix(".tmp"), ckpt)
        if stop_after is not None and step + 1 >= stop_after and step + 1 < steps:
            # An interruption on purpose (tests, time budgets): the checkpoint is the state.
            torch.save({"args": args, "model": model.state_dict(), "opt": opt.state_dict(),
                        "sched": sched.state_dict(), "log": log, "step": step + 1}, ckpt)
            return {"component": "captioner", **args, "stopped_at": step + 1, "log": log}

    model.eval()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    meta = {"kind": "foleyworld-captioner", "config": asdict(cfg), "classes": list(fw.CLASSES),
            "train": args}
    (out / CAPTIONER_META).write_text(json.dumps(meta, indent=2))
    result = {"component": "captioner", **args, "log": log, "seconds": round(time.perf_counter() - t0, 1)}
    if eval_scenes:
        result["heldout"] = evaluate_captioner_recall(FoleyCaptioner(out), n_scenes=eval_scenes)
    # Wall time stays out of the file: the bundle's identity hashes it, and a rerun must match.
    (out / "train_log.json").write_text(json.dumps({k: v for k, v in result.items() if k != "seconds"}, indent=2))
    ckpt.unlink(missing_ok=True)
    return result


def evaluate_captioner_recall(captioner: Captioner, n_scenes: int = 60, k: int = DEFAULT_K,
                              split: str = "test") -> dict[str, Any]:
    """Recall of true sources on FoleyWorld held-out seeds: the fraction of (scene, source)
    pairs whose class is named by at least one prompt (``foleyworld.class_of_caption``), and
    the precision of the prompts that map to a class."""
    from models import foleyworld as fw

    seeds = _split_seeds(fw.SPLITS[split], n_scenes)
    hit = total = named = correct = 0
    for s in seeds:
        scene = fw.make_scene(int(s), 8.0, scene_sources(s), 64)
        truth = {src.cls for src in scene.sources}
        got = {fw.class_of_caption(p) for p in captioner.caption(scene.frames, k=k, seed=s).prompts}
        got.discard(None)
        hit += len(truth & got)
        total += len(truth)
        named += len(got)
        correct += len(got & truth)
    return {"recall": hit / max(1, total), "precision": correct / max(1, named), "scenes": len(seeds)}
