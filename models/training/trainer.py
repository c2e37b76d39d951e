"""The loop every flow-matching run of models/training shares (the base network's, the guidance
branch's): optimiser, schedule, EMA, checkpoints and exact resume, logs, progress.

Optimiser AdamW (β = 0.9, 0.99; no weight decay on norms, biases and learned null features),
learning rate linear warm-up over ``warmup`` steps then cosine decay to 10 % of the base rate,

    lr(k) = lr₀ (k + 1) / W                          for k < W
    lr(k) = lr₀ (0.1 + 0.45 (1 + cos(π (k − W) / (K − W))))   otherwise,

gradients clipped to norm 1, bf16 autocast. The shipped weights are the exponential moving
average θ̄ ← d θ̄ + (1 − d) θ with d = min(0.999, (1 + k)/(10 + k)) at step k. Every step's
randomness comes from a generator seeded with (seed, component, step) (``step_generator``), so
a run is a pure function of (seed, thread count, step count) and a resumed run continues
bit-identically; the global torch/numpy streams are checkpointed too. Gradient accumulation
and data parallel ranks (models/training/distributed.py) each draw their own stream. SIGTERM
ends a run after the current step with a checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from models.training.distributed import average_gradients, average_scalar, rank_and_world


def set_determinism(seed: int, threads: int) -> None:
    """Seeds and thread count: CPU kernels are deterministic for a fixed thread count."""
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    torch.set_num_threads(int(threads))
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass


def step_generator(seed: int, component: str, step: int, micro: int = 0) -> torch.Generator:
    """An independent, reproducible random stream per (seed, component, step, micro-batch).

    Micro-batch 0 is the stream a single-process, no-accumulation run has always used, so the
    shipped weights stay reproducible; micro-batch m > 0 (rank r, accumulation slot a: m = r·A + a)
    draws its own stream."""
    if micro:
        component = f"{component}#{micro}"
    tag = sum((i + 1) * ord(ch) for i, ch in enumerate(component))
    return torch.Generator().manual_seed((seed * 1_000_003 + tag * 7919 + step) % (2**63 - 1))


class EMA:
    """Exponential moving average of parameters with the usual warm-up of the decay."""

    def __init__(self, params: dict[str, torch.Tensor], max_decay: float = 0.999) -> None:
        self.max_decay = max_decay
        self.shadow = {k: v.detach().float().clone() for k, v in params.items()}

    @torch.no_grad()
    def update(self, params: dict[str, torch.Tensor], step: int) -> None:
        decay = min(self.max_decay, (1 + step) / (10 + step))
        for k, v in params.items():
            self.shadow[k].mul_(decay).add_(v.detach().float(), alpha=1 - decay)

    def state_dict(self) -> dict[str, Any]:
        return {"max_decay": self.max_decay, "shadow": self.shadow}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.max_decay = state["max_decay"]
        self.shadow = {k: v.clone() for k, v in state["shadow"].items()}


def named_trainable(modules: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    return {f"{m}.{k}": p for m, mod in modules.items() for k, p in mod.named_parameters() if p.requires_grad}


def lr_at(step: int, total: int, base_lr: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 10 % of the base rate."""
    if step < warmup:
        return base_lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base_lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


class RunLog:
    """Per-run JSON log and loss plot, written alongside the checkpoint."""

    def __init__(self, path: Path, meta: dict[str, Any]) -> None:
        self.path = path
        self.meta = meta
        self.records: list[dict[str, float]] = []

    def add(self, **rec: float) -> None:
        self.records.append({k: float(v) for k, v in rec.items()})

    def state(self) -> dict[str, Any]:
        return {"meta": self.meta, "records": self.records}

    def load(self, state: dict[str, Any]) -> None:
        self.records = list(state["records"])

    def write(self, extra: dict[str, Any] | None = None) -> None:
        out = {"meta": self.meta, "records": self.records}
        if extra:
            out.update(extra)
        self.path.with_suffix(".json").write_text(json.dumps(out, indent=1))
        self._plot()

    def _plot(self) -> None:
        if not self.records:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        steps = np.array([r["step"] for r in self.records])
        loss = np.array([r["loss"] for r in self.records])
        fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
        ax.plot(steps, loss, lw=0.6, alpha=0.35, label="loss")
        k = max(1, len(loss) // 40)
        if len(loss) > k:
            smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
            ax.plot(steps[k - 1 :], smooth, lw=1.5, label=f"mean of {k}")
        ax.set_xlabel("step")
        ax.set_ylabel("flow-matching MSE")
        ax.set_title(self.meta.get("component", ""))
        ax.legend()
        fig.tight_layout()
        fig.savefig(self.path.with_suffix(".png"))
        plt.close(fig)


def atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def progress_bar():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        refresh_per_second=2,
    )


@dataclass
class RunConfig:
    """One component's training run. ``steps`` fixes the result; ``minutes_cap`` only stops a run
    that overruns (and then says so in its log, since it is no longer step-deterministic)."""

    component: str
    steps: int
    batch_size: int
    lr: float
    window: float = 8.0
    warmup: int = 100
    weight_decay: float = 0.01
    ema_decay: float = 0.999
    null_text_p: float = 0.1
    null_video_p: float = 0.1
    grad_clip: float = 1.0
    # Micro-batches per optimiser step (per rank): batch_size each, gradients averaged.
    grad_accum: int = 1
    bf16: bool = True
    ckpt_every: int = 200
    log_every: int = 10
    minutes_cap: float | None = None
    seed: int = 0
    threads: int = 2


def _autocast(enabled: bool, device_type: str = "cpu"):
    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=enabled)


class Trainer:
    """The loop shared by every flow-matching run: schedule, EMA, checkpoints, logs, progress."""

    def __init__(self, cfg: RunConfig, run_dir: Path, modules: dict[str, nn.Module]) -> None:
        self.cfg = cfg
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        self.modules = modules
        self.params = named_trainable(modules)
        decay, no_decay = [], []
        for name, p in self.params.items():
            # Norms, biases and embeddings-as-vectors are not weight-decayed (standard AdamW practice).
            (no_decay if p.dim() < 2 or "empty_" in name else decay).append(p)
        self.opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.lr,
            betas=(0.9, 0.99),
        )
        self.ema = EMA(self.params, cfg.ema_decay)
        self.log = RunLog(run_dir / f"{cfg.component}_log", {"component": cfg.component, "config": dataclasses.asdict(cfg)})
        self.step = 0
        self.elapsed = 0.0
        self.ckpt_path = run_dir / "state.pt"
        self.rank, self.world = rank_and_world()
        self.micro = (0, 1)
        self.device_type = next(iter(self.params.values())).device.type if self.params else "cpu"
        self._signalled: int | None = None

    def save(self) -> None:
        if self.rank != 0:  # one writer; every rank resumes from the same file
            return
        atomic_torch_save(
            {
                "step": self.step,
                "elapsed": self.elapsed,
                "modules": {k: m.state_dict() for k, m in self.modules.items()},
                "opt": self.opt.state_dict(),
                "ema": self.ema.state_dict(),
                "log": self.log.state(),
                # Data draws come from per-step generators; the global streams are saved so
                # anything drawing from them (dropout) resumes where it was.
                "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state()},
            },
            self.ckpt_path,
        )

    def try_resume(self) -> bool:
        if not self.ckpt_path.exists():
            return False
        state = torch.load(self.ckpt_path, map_location="cpu", weights_only=False)
        for k, m in self.modules.items():
            m.load_state_dict(state["modules"][k])
        self.opt.load_state_dict(state["opt"])
        self.ema.load_state_dict(state["ema"])
        self.log.load(state["log"])
        self.step = int(state["step"])
        self.elapsed = float(state["elapsed"])
        if "rng" in state:
            torch.set_rng_state(state["rng"]["torch"])
            np.random.set_state(state["rng"]["numpy"])
        return True

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._signalled = signum

    def run(self, loss_fn: Callable[[torch.Generator, int], torch.Tensor], quiet: bool = False) -> dict[str, Any]:
        cfg = self.cfg
        resumed_from = self.step if self.try_resume() else 0
        for m in self.modules.values():
            m.train()
        stopped_early = False
        start = time.time() - self.elapsed
        probe_before = self.probe(loss_fn)
        # SIGTERM (a scheduler's pre-emption, `kill`) ends the run after the current step with
        # a checkpoint; only the main thread may install handlers.
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, self._on_signal)
        bar = progress_bar() if not quiet and self.rank == 0 else None
        task = bar.add_task(cfg.component, total=cfg.steps, completed=self.step, info="") if bar else None
        if bar:
            bar.start()
        try:
            while self.step < cfg.steps:
                gen = step_generator(cfg.seed, cfg.component, self.step)
                lr = lr_at(self.step, cfg.steps, cfg.lr, cfg.warmup)
                for group in self.opt.param_groups:
                    group["lr"] = lr
                self.opt.zero_grad(set_to_none=True)
                micro = max(1, cfg.grad_accum)
                loss_sum = 0.0
                for a in range(micro):
                    m = self.rank * micro + a
                    # (this micro-batch's index among all of the step's): sources that shard
                    # their data draw micro-batch m from part m, whichever process runs it
                    self.micro = (m, micro * self.world)
                    g = gen if m == 0 else step_generator(cfg.seed, cfg.component, self.step, m)
                    with _autocast(cfg.bf16, self.device_type):
                        loss = loss_fn(g, self.step)
                    (loss / micro if micro > 1 else loss).backward()
                    loss_sum += loss.item()
                average_gradients(list(self.params.values()))
                loss = torch.tensor(average_scalar(loss_sum / micro))
                gnorm = torch.nn.utils.clip_grad_norm_(list(self.params.values()), cfg.grad_clip)
                self.opt.step()
                self.ema.update(self.params, self.step)
                self.step += 1
                self.elapsed = time.time() - start
                if not math.isfinite(loss.item()):
                    raise FloatingPointError(f"{cfg.component}: loss is {loss.item()} at step {self.step}")
                self.log.add(step=self.step, loss=loss.item(), lr=lr, grad_norm=float(gnorm), seconds=self.elapsed)
                if bar and (self.step % cfg.log_every == 0 or self.step == cfg.steps):
                    recent = [r["loss"] for r in self.log.records[-50:]]
                    bar.update(task, completed=self.step, info=f"loss {np.mean(recent):.4f}  {self.step / max(self.elapsed, 1e-9):.2f} it/s")
                if self.step % cfg.ckpt_every == 0 or self.step == cfg.steps:
                    self.save()
                    self.log.write()
                if cfg.minutes_cap is not None and self.elapsed > 60 * cfg.minutes_cap and self.step < cfg.steps:
                    stopped_early = True
                    self.save()
                    break
                if self._signalled is not None:
                    self.save()
                    self.log.write()
                    raise SystemExit(128 + self._signalled)
        finally:
            if bar:
                bar.stop()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        summary = {
            "steps": self.step,
            "target_steps": cfg.steps,
            "seconds": round(self.elapsed, 1),
            "it_per_s": round(self.step / max(self.elapsed, 1e-9), 3),
            "resumed_from": resumed_from,
            "stopped_by_time_cap": stopped_early,
            "final_loss_mean_100": float(np.mean([r["loss"] for r in self.log.records[-100:]])) if self.log.records else None,
            "probe_loss_before": probe_before,
            "probe_loss_after": self.probe(loss_fn),
        }
        self.log.write({"summary": summary})
        return summary

    @torch.no_grad()
    def probe(self, loss_fn: Callable[[torch.Generator, int], torch.Tensor]) -> float:
        """The loss on one fixed batch (same examples, noise, t and dropout every time): unlike
        the per-step batch losses it moves only when the weights do, so a short run's progress
        can be read from it."""
        with _autocast(self.cfg.bf16, self.device_type):
            return float(loss_fn(step_generator(self.cfg.seed, self.cfg.component + "-probe", 0), -1))

    @torch.no_grad()
    def load_ema_into_modules(self) -> None:
        for name, p in self.params.items():
            p.copy_(self.ema.shadow[name].to(p.dtype))
