"""The guidance-branch trainer (u_ψ): one trainer for every bundle and data source.

The paper's recipe (Hayakawa et al., §3.3): the base network u is frozen; the branch ψ (a
ControlNet: transformer blocks initialised from the backbone's, zero-initialised input and
output projections, so u_ψ ≡ u at step 0) learns the flow of a target segment given its video,
a null text and, as audio condition, another segment of the same clip:

    L(ψ) = E_{(x₁, x̃, V) ~ pairs, x₀ ~ N(0, I), t ~ logit-N(μ_t, 1)}
           ‖ u_ψ(x_t, t, V′, ∅, x̃) − (x₁ − x₀) ‖²,   x_t = (1 − t)·x₀ + t·x₁,

with V′ = V, or the null video with probability ``null_video_p`` (so the branch also learns to
steer from x̃ alone, which NAG uses when the video says little). μ_t = ``t_mean`` (0 by
default) shifts training towards the noise end, where x̃ tells what x_t does not yet: on
FoleyWorld x̃'s held-out gain falls from 15 % at t = 0.1 to 1 % at t = 0.8, and μ_t = −0.8
tripled it at t = 0.2 at equal cost (issue 17 §5). The validation probe keeps μ_t = 0, so
probe losses compare across recipes. Pairs come from a source
(models/training/guidance_sources.py): extracted shards of real footage, or the demo's
FoleyWorld scenes. The loop (AdamW, warm-up + cosine decay, gradient clipping, EMA, bf16
autocast, gradient accumulation, data parallel over ranks, checkpoints every N steps and on
SIGTERM, exact resume) is the shared ``Trainer`` (models/training/trainer.py).

The result is the bundle's ``controlnet/`` component, written into the bundle atomically (a
temp directory renamed over the old one) with ``training.json``: the data's identity (listing
hash, extraction weights), steps, seed, batch, and the base weights' hash.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from models.generation.bundle import file_sha256, path_digest
from models.generation.controlnet import AudioControlNet
from models.generation.mmaudio import MMAudio
from models.training.distributed import rank_and_world
from models.training.guidance_sources import PairBatch, PairSource
from models.training.flow_matching import flow_matching_loss, null_fill
from models.training.trainer import RunConfig, Trainer, set_determinism

TRAINING_RECORD = "training.json"


def branch_loss(net: MMAudio, cn: AudioControlNet, batch: PairBatch, gen: torch.Generator,
                null_video_p: float, cond: torch.Tensor | None = None, t_mean: float = 0.0) -> torch.Tensor:
    """The loss above for one batch (``cond`` overrides x̃: the other-clip and silent controls)."""
    n = batch.x1.shape[0]
    drop_v = torch.rand(n, generator=gen) < null_video_p
    clip_f = null_fill(batch.clip, drop_v, net.empty_clip_feat[None])
    sync_f = null_fill(batch.sync, drop_v, net.empty_sync_feat[None])
    text_f = net.empty_string_feat[None].expand(n, -1, -1)
    conditions = net.preprocess_conditions(clip_f, sync_f, text_f)
    x_cond = batch.cond if cond is None else cond
    return flow_matching_loss(lambda xt, t: cn.predict_flow(net, xt, t, conditions, x_cond), batch.x1, gen,
                              t_mean)


@torch.no_grad()
def xtilde_dependence(net: MMAudio, cn: AudioControlNet, source: Any, *, seed: int = 0, n: int = 32,
                      times: tuple[float, ...] = (0.2, 0.5, 0.8), transform: Any = None) -> dict[str, Any]:
    """Does the branch listen to x̃? Its held-out loss at fixed t with the true x̃ (another segment
    of the same clip), with x̃ from another clip, and with a silent x̃ (same pairs, noise, video):

        gain_other(t) = 1 − L(true x̃) / L(other clip's x̃),  gain_silent(t) likewise.

    A branch that ignores x̃ has gains ≈ 0, and NAG then only subtracts u_ψ ≈ u."""
    out: dict[str, Any] = {}
    silence = source.silence() if hasattr(source, "silence") else None
    for t in times:
        gen = torch.Generator().manual_seed(seed)
        batch = source.probe_pairs(gen, n)
        if transform is not None:
            batch = transform(batch)
        other = source.other_clip_condition(batch, gen)
        x0 = torch.randn(batch.x1.shape, generator=gen)
        tt = torch.full((batch.x1.shape[0],), float(t))
        xt = (1 - t) * x0 + t * batch.x1
        text_f = net.empty_string_feat[None].expand(batch.x1.shape[0], -1, -1)
        conditions = net.preprocess_conditions(batch.clip, batch.sync, text_f)

        def loss(cond: torch.Tensor) -> float:
            v = cn.predict_flow(net, xt, tt, conditions, cond)
            return float(torch.nn.functional.mse_loss(v.float(), (batch.x1 - x0).float()))

        row = {"true": loss(batch.cond), "other_clip": loss(other)}
        if silence is not None:
            row["silent"] = loss(silence[None].expand_as(batch.cond).to(batch.cond.dtype))
        row["gain_other"] = 1 - row["true"] / row["other_clip"]
        if "silent" in row:
            row["gain_silent"] = 1 - row["true"] / row["silent"]
        out[f"t={t}"] = row
    return out


def train_branch(net: MMAudio, source: PairSource, run_dir: Path, cfg: RunConfig, *,
                 probe_batch: int | None = None, quiet: bool = False,
                 transform: Any = None, pooled_cond: bool = False,
                 t_mean: float = 0.0) -> tuple[AudioControlNet, dict[str, Any]]:
    """Train a fresh branch on ``source``; returns it (EMA weights) and the run's summary.

    ``transform`` maps a drawn ``PairBatch`` before the loss (the demo projects its clip grid
    features with its frozen video-feature head there)."""
    set_determinism(cfg.seed, cfg.threads)
    net = net.eval().requires_grad_(False)
    cn = AudioControlNet.from_transformer(net, init_from_backbone=True, pooled_cond=pooled_cond)
    trainer = Trainer(cfg, run_dir, {"controlnet": cn})

    def loss_fn(gen: torch.Generator, step: int) -> torch.Tensor:
        batch = (source.probe_pairs(gen, probe_batch or cfg.batch_size) if step < 0
                 else source.pairs(gen, cfg.batch_size, *trainer.micro))
        if transform is not None:
            batch = transform(batch)
        # The probe keeps the standard logit-normal t, so probe losses compare across recipes.
        return branch_loss(net, cn, batch, gen, cfg.null_video_p, t_mean=t_mean if step >= 0 else 0.0)

    summary = trainer.run(loss_fn, quiet=quiet)
    trainer.load_ema_into_modules()
    return cn, summary


def write_branch(bundle: Path, cn: AudioControlNet, record: dict[str, Any]) -> Path:
    """``bundle/controlnet`` replaced atomically by ``cn`` with its training record."""
    bundle = Path(bundle)
    tmp = bundle / f".controlnet.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    cn.save_pretrained(tmp)
    (tmp / TRAINING_RECORD).write_text(json.dumps(record, indent=1, sort_keys=True, default=str))
    final = bundle / "controlnet"
    old = bundle / f".controlnet.{os.getpid()}.old"
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def train_guidance_on(bundle: Path, source: PairSource, *, steps: int, batch: int = 8, lr: float = 2e-4,
                      seed: int = 0, threads: int = 1, grad_accum: int = 1, ckpt_every: int = 100,
                      null_video_p: float = 0.1, minutes: float | None = None, bf16: bool = True,
                      run_dir: Path | None = None, quiet: bool = False,
                      transform: Any = None, pooled_cond: bool = False, t_mean: float = 0.0) -> dict[str, Any]:
    """Train the branch of a bundle's network on ``source`` and write it into the bundle."""
    bundle = Path(bundle)
    net = MMAudio.from_pretrained(bundle / "transformer")
    if torch.cuda.is_available() and os.environ.get("STEPFOLEY_DEVICE") == "cuda":
        net = net.to("cuda")
    cfg = RunConfig("guidance", steps, batch, lr, window=4.0, warmup=min(50, max(1, steps // 10)),
                    minutes_cap=minutes, seed=seed, threads=threads, ckpt_every=ckpt_every,
                    grad_accum=grad_accum, null_video_p=null_video_p, bf16=bf16)
    cn, summary = train_branch(net, source, Path(run_dir or bundle / "_runs" / "guidance"), cfg, quiet=quiet,
                               transform=transform, pooled_cond=pooled_cond, t_mean=t_mean)
    if hasattr(source, "other_clip_condition"):
        summary["xtilde_dependence"] = xtilde_dependence(net, cn.eval(), source, seed=seed, transform=transform)
    record = {"data": source.identity(), "steps": steps, "seed": seed, "batch": batch,
              "grad_accum": grad_accum, "lr": lr, "null_video_p": null_video_p, "pooled_cond": pooled_cond,
              "t_mean": t_mean,
              # (a bundle being trained by `train all` has no model_index.json yet)
              "base_weights_sha256": path_digest({str(f.relative_to(bundle)): file_sha256(f)
                                                  for f in sorted((bundle / "transformer").glob("*.safetensors"))}),
              "summary": summary}
    if rank_and_world()[0] == 0:
        write_branch(bundle, cn, record)
    return {**summary, "record": record}
