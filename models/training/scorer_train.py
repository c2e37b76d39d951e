"""Training the FoleyWorld scorer (the inference half is models/prompting/scorer.py)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from models.prompting.scorer import (FoleyScorer, FoleyScorerConfig, FoleyScorerModel, SCORER_META,
                                     AUDIO_SR, build_text_tokenizer, encode_text)
from models.training import foleyworld as fw
from models.training.captioner_train import (all_captions, optimiser_and_resume, bank_mosaics, foleyworld_bank, sample_caption,
                                             scene_sample_rate, scene_sources, split_seeds)
from models.training.trainer import atomic_torch_save, step_generator

def train_scorer(out_dir: str | os.PathLike, steps: int = 1200, seed: int = 0, threads: int = 2,
                 n_train: int = 400, batch: int = 32, lr: float = 2e-3, log_every: int = 50,
                 cfg: FoleyScorerConfig | None = None, quiet: bool = True,
                 stop_after: int | None = None, eval_scenes: int = 40) -> dict[str, Any]:
    """Train the default scorer on FoleyWorld train seeds and save it to ``out_dir``.

    Each step: ``batch`` scenes (video mosaic with random keyframes, and a random 4 s crop of
    the mixture's log-mel) against ``batch`` captions (a paraphrase of a random class: half
    from the batch's own scenes, half uniform, so negatives are common); the sigmoid loss above
    for both modalities. Deterministic given (seed, threads, steps); resumable from
    ``out_dir/_ckpt.pt`` (``stop_after`` interrupts on purpose); ``out_dir/train_log.json``
    holds the curve and, unless ``eval_scenes`` is 0, accuracies on held-out test seeds.
    """
    from safetensors.torch import save_file

    cfg = cfg or FoleyScorerConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(int(threads))
    t0 = time.perf_counter()
    args = {"steps": steps, "seed": seed, "threads": threads, "n_train": n_train, "batch": batch, "lr": lr,
            "config": asdict(cfg)}
    bank = foleyworld_bank(tuple(split_seeds(fw.SPLITS["train"], n_train)), tile=cfg.tile,
                           mel=(cfg.n_fft, cfg.hop, cfg.n_mels))
    classes = list(fw.CLASSES)
    tokenizer = build_text_tokenizer(all_captions(classes, seed), cfg.text_len)
    torch.manual_seed(seed)
    model = FoleyScorerModel(cfg, len(tokenizer), tokenizer.pad_token_id, tokenizer.bos_token_id,
                             tokenizer.eos_token_id)
    opt, sched, log, start = optimiser_and_resume(model, lr, steps, out, args)
    ckpt = out / "_ckpt.pt"

    n_scenes, t_mel = len(bank["classes"]), bank["mels"].shape[-1]
    crop = min(t_mel, int(4.0 * AUDIO_SR / cfg.hop))
    model.train()
    for step in range(start, steps):
        gen = step_generator(seed, "scorer", step)
        rng = np.random.default_rng([seed, step, 5])
        idx = torch.randint(0, n_scenes, (batch,), generator=gen)
        pix = bank_mosaics(bank["keyframes"][idx], cfg.grid, gen)
        off = torch.randint(0, t_mel - crop + 1, (batch,), generator=gen)
        mel = torch.stack([bank["mels"][int(i), :, int(o) : int(o) + crop] for i, o in zip(idx, off)])
        text_cls = [rng.choice(bank["classes"][int(i)]) if b % 2 == 0 else classes[int(rng.integers(len(classes)))]
                    for b, i in enumerate(idx)]
        texts = [sample_caption(str(c), rng) for c in text_cls]
        y = torch.tensor([[1.0 if c in bank["classes"][int(i)] else -1.0 for c in text_cls] for i in idx])
        ids, mask = encode_text(tokenizer, texts, cfg.text_len)
        t = model.text(ids, mask)
        loss_v = -F.logsigmoid(y * model.logits(model.video(pix) @ t.T, 0)).mean()
        loss_a = -F.logsigmoid(y * model.logits(model.sound(mel) @ t.T, 1)).mean()
        loss = loss_v + loss_a
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if (step + 1) % log_every == 0 or step + 1 == steps:
            log.append({"step": step + 1, "loss_video": round(loss_v.item(), 5), "loss_audio": round(loss_a.item(), 5)})
            if not quiet:
                print(f"scorer step {step + 1}/{steps} video {loss_v.item():.4f} audio {loss_a.item():.4f}", flush=True)
            atomic_torch_save({"args": args, "model": model.state_dict(), "opt": opt.state_dict(),
                               "sched": sched.state_dict(), "log": log, "step": step + 1}, ckpt)
        if stop_after is not None and step + 1 >= stop_after and step + 1 < steps:
            # An interruption on purpose (tests, time budgets): the checkpoint is the state.
            torch.save({"args": args, "model": model.state_dict(), "opt": opt.state_dict(),
                        "sched": sched.state_dict(), "log": log, "step": step + 1}, ckpt)
            return {"component": "scorer", **args, "stopped_at": step + 1, "log": log}

    model.eval()
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(out / "model.safetensors"))
    tokenizer.save_pretrained(out)
    (out / SCORER_META).write_text(json.dumps({"kind": "foleyworld-scorer", "config": asdict(cfg),
                                               "classes": classes, "train": args}, indent=2))
    result = {"component": "scorer", **args, "log": log, "seconds": round(time.perf_counter() - t0, 1)}
    if eval_scenes:
        result["heldout"] = evaluate_scorer(FoleyScorer(out), n_scenes=eval_scenes)
    # Wall time stays out of the file: the bundle's identity hashes it, and a rerun must match.
    (out / "train_log.json").write_text(json.dumps({k: v for k, v in result.items() if k != "seconds"}, indent=2))
    ckpt.unlink(missing_ok=True)
    return result


def evaluate_scorer(scorer: FoleyScorer, n_scenes: int = 40, split: str = "test") -> dict[str, float]:
    """On held-out scenes, with one canonical caption per class: how often a present class
    outscores every absent one (video ranking AUC-style), and the accuracy of the audio
    presence decision at 0.5."""
    classes = list(fw.CLASSES)
    texts = [sample_caption(c, np.random.default_rng(0)) for c in classes]
    pairs_won = pairs = correct = total = 0
    for s in split_seeds(fw.SPLITS[split], n_scenes):
        scene = fw.make_scene(int(s), 8.0, scene_sources(s), 64)
        truth = {src.cls for src in scene.sources}
        v = scorer.score(scene.frames, texts)
        for i, ci in enumerate(classes):
            for j, cj in enumerate(classes):
                if ci in truth and cj not in truth:
                    pairs += 1
                    pairs_won += v[i] > v[j]
        sr = scene_sample_rate(scene)
        pa = scorer.audio_presence(np.asarray(scene.mixture), sr, texts)
        for c, p in zip(classes, pa):
            total += 1
            correct += (p >= 0.5) == (c in truth)
    return {"video_pair_accuracy": pairs_won / max(1, pairs), "audio_presence_accuracy": correct / max(1, total)}
