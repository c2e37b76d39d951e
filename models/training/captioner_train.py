"""Training the FoleyWorld captioner (the inference half is models/prompting/captioner.py).

The shared pieces of the two FoleyWorld prompting trainers live here too (the scorer's trainer,
models/training/scorer_train.py, uses them): split seeds, keyframe banks of FoleyWorld scenes,
caption paraphrases. Per-step randomness comes from models/training/trainer.py's generators.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from models.prompting.captioner import (CAPTIONER_META, SEPARATOR, Captioner, FoleyCaptioner,
                                        FoleyCaptionerConfig, build_caption_model,
                                        build_caption_tokenizer, keyframe_indices, keyframes)
from models.prompting.prompt_text import DEFAULT_K
from models.prompting.scorer_audio import log_mel_16k
from models.training import foleyworld as fw
from models.training.trainer import atomic_torch_save, step_generator


def split_seeds(split: Any, limit: int | None = None) -> list[int]:
    seeds = [int(s) for s in (split if not isinstance(split, int) else range(split))]
    return seeds[:limit] if limit else seeds




def scene_sources(seed: int) -> int:
    """How many sources (1–3) the trainers' scene for ``seed`` has: drawn from the seed, so a
    bank is a pure function of its seeds."""
    return 1 + int(np.random.default_rng([int(seed), 17]).integers(0, 3))


def scene_sample_rate(scene: Any) -> int:
    """A FoleyWorld scene's audio rate: the scene's own attribute, else the module's constant,
    else the default bundle's 16 kHz."""
    return int(getattr(scene, "sample_rate", None) or getattr(fw, "SAMPLE_RATE", None) or 16000)


@functools.lru_cache(maxsize=2)
def foleyworld_bank(seeds: tuple[int, ...], tile: int = 32, n_keep: int = 8, size: int = 64, duration: float = 8.0,
                    mel: tuple[int, int, int] = (1024, 512, 64)) -> dict[str, Any]:
    """FoleyWorld scenes reduced to what the captioner and scorer train on: keyframes
    ``[N, n_keep, 3, tile, tile]`` uint8, mixture log-mels ``[N, n_mels, frames]`` and the
    sorted source classes per scene. Cached per process, so the bundle trainer renders the
    scenes once for both components."""
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


def bank_mosaics(bank: torch.Tensor, grid: int, gen: torch.Generator | None) -> torch.Tensor:
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
    got = fw.captions_for(cls, rng)
    if isinstance(got, str):
        return got
    options = list(got)
    return str(options[int(rng.integers(0, len(options)))])


def all_captions(classes: Sequence[str], seed: int, draws: int = 16) -> list[str]:
    """Every paraphrase the trainers may draw (vocabulary for the word-level tokenizers)."""
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


def optimiser_and_resume(model: torch.nn.Module, lr: float, steps: int, out: Path,
                         args: dict[str, Any]) -> tuple[Any, Any, list[dict[str, float]], int]:
    """The FoleyWorld prompting trainers' AdamW with 5 % linear warm-up then cosine decay, and
    their state from ``out/_ckpt.pt`` when it was saved with the same ``args``:
    (optimiser, scheduler, log, first step)."""
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
    return opt, sched, log, start


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
    cfg = cfg or FoleyCaptionerConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(int(threads))
    t0 = time.perf_counter()
    args = {"steps": steps, "seed": seed, "threads": threads, "n_train": n_train, "batch": batch, "lr": lr,
            "config": asdict(cfg)}

    train_seeds = split_seeds(fw.SPLITS["train"], n_train)
    data = foleyworld_bank(tuple(train_seeds), tile=cfg.tile)
    bank, classes = data["keyframes"], data["classes"]
    tokenizer = build_caption_tokenizer(all_captions(fw.CLASSES, seed))
    model = build_caption_model(cfg, len(tokenizer), tokenizer.pad_token_id, tokenizer.bos_token_id,
                                tokenizer.eos_token_id, seed)
    opt, sched, log, start = optimiser_and_resume(model, lr, steps, out, args)
    ckpt = out / "_ckpt.pt"

    model.train()
    for step in range(start, steps):
        gen = step_generator(seed, "captioner", step)
        idx = torch.randint(0, len(classes), (batch,), generator=gen)
        pix = bank_mosaics(bank[idx], cfg.grid, gen)
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
            atomic_torch_save({"args": args, "model": model.state_dict(), "opt": opt.state_dict(),
                               "sched": sched.state_dict(), "log": log, "step": step + 1}, ckpt)
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
    seeds = split_seeds(fw.SPLITS[split], n_scenes)
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
