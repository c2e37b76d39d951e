"""Training of the shipped default bundle (tiny MMAudio + guidance branch) on FoleyWorld.

Flow matching (rectified flow, MMAudio's convention: t = 0 is noise, t = 1 is data). For a data
latent x₁, noise x₀ ~ N(0, I) and t drawn log-normally, t = σ(n), n ~ N(0, 1) (the logit-normal
"log-normal t" of SD3/MMAudio, which puts most samples at mid t where the velocity is hardest),

    x_t = (1 − t) x₀ + t x₁,        L(θ) = E ‖ u_θ(x_t, t, V, C) − (x₁ − x₀) ‖²

Classifier-free guidance needs the unconditional velocity from the same network, so each
example's text and video are independently replaced by the network's learned null features
with probability 0.1 (p(text null) = p(video null) = 0.1, 1 % both).

Base (``train_base``): θ = network + clip projection + text encoder. An example is one source
of a FoleyWorld scene: target x₁ = codec(that source's isolated audio), conditioned on the full
scene's video and a paraphrased caption of that source. So the model learns "make the sound the
caption names, timed by the video", which is what each track of step-by-step generation is.
The caption encoder starts warm (``pretrain_text_encoder``: 300 steps of caption → class), so
paraphrases of one class begin close together instead of at random features.

Guidance (``train_guidance``, the paper's u_ψ): base frozen, only the ControlNet branch ψ is
trained, with the same loss but u_ψ(x_t, t, V, ∅, x̃): target x₁ = one segment of a scene's
soundtrack, condition x̃ = a different, non-overlapping segment of the same soundtrack (so ψ
learns "which sounds are present", not to copy x̃ in time), video of the target segment, text
null (video also nulled 10 % of the time, as audio-only data in the paper).

Optimiser AdamW (β = 0.9, 0.99), linear warm-up (100 / 50 steps, a tenth of a shorter run) then
cosine decay; EMA of the weights
(decay min(0.999, (1 + k)/(10 + k)) at step k) is what gets shipped. Every step's randomness
comes from a generator seeded with (seed, component, step), so a run is a pure function of
(seed, thread count, step count) and a resumed run continues bit-identically.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from models.demo_family.codec import MelCodec
from models.demo_family.features import TextEncoder, VideoFeatures, build_tokenizer, tokenize
from models.training import foleyworld as fw
from models.training.distributed import average_gradients, average_scalar, rank_and_world
from models.training.guidance_sources import PairBatch

BUNDLE_NAME = "foleyworld-tiny"
DEFAULT_BUNDLE_DIR = Path(__file__).resolve().parents[1] / "weights" / BUNDLE_NAME


# ============================================================================ utilities


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


def sample_log_normal_t(n: int, gen: torch.Generator) -> torch.Tensor:
    """t = sigmoid(N(0, 1)): logit-normal time, denser at mid t."""
    return torch.sigmoid(torch.randn(n, generator=gen))


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


# ============================================================================ FoleyWorld data


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


# ============================================================================ training runs


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


# ---------------------------------------------------------------------------- conditioning


def null_fill(x: torch.Tensor, drop: torch.Tensor, null: torch.Tensor) -> torch.Tensor:
    """Replace rows ``drop`` of ``x [B, ...]`` by the (broadcast) null feature."""
    if not bool(drop.any()):
        return x
    mask = drop.view(-1, *([1] * (x.dim() - 1))).to(x.dtype)
    return x * (1 - mask) + null.to(x.dtype).expand_as(x) * mask


def flow_matching_loss(
    velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x1: torch.Tensor, gen: torch.Generator
) -> torch.Tensor:
    """‖u(x_t, t) − (x₁ − x₀)‖² with x_t = (1 − t)x₀ + t x₁ and logit-normal t."""
    x0 = torch.randn(x1.shape, generator=gen)
    t = sample_log_normal_t(x1.shape[0], gen)
    xt = (1 - t[:, None, None]) * x0 + t[:, None, None] * x1
    v = velocity(xt, t)
    return torch.nn.functional.mse_loss(v.float(), (x1 - x0).float())


@dataclass
class BatchPick:
    scene: list[int]
    source: list[int]
    offset: list[int]
    caption: list[str]


def pick_base_batch(bank: SceneBank, gen: torch.Generator, batch: int, window: float) -> BatchPick:
    """Uniform scene, then uniform source within it, window offset and caption paraphrase."""
    max_off = int(round((bank.duration - window) * 8))
    scenes, sources, offsets, caps = [], [], [], []
    for _ in range(batch):
        s = int(torch.randint(len(bank), (1,), generator=gen))
        k = int(torch.randint(len(bank.classes[s]), (1,), generator=gen))
        o = int(torch.randint(max_off + 1, (1,), generator=gen))
        options = bank.captions[s][k]
        caps.append(options[int(torch.randint(len(options), (1,), generator=gen))])
        scenes.append(s)
        sources.append(k)
        offsets.append(o)
    return BatchPick(scenes, sources, offsets, caps)


# ---------------------------------------------------------------------------- base


def text_features(text_encoder: TextEncoder, tokenizer, captions: Sequence[str]) -> torch.Tensor:
    ids, mask = tokenize(tokenizer, captions, text_encoder.config.text_seq_len)
    return text_encoder(ids, mask)


def base_conditions(
    bank: SceneBank,
    pick: BatchPick,
    window: float,
    latent_rate: float,
    video_features: VideoFeatures,
    text_encoder: TextEncoder,
    tokenizer,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack a picked batch into (x₁, clip_f, sync_f, text_f)."""
    x1, clip, sync = [], [], []
    for s, k, o in zip(pick.scene, pick.source, pick.offset):
        crop = crop_window(bank, s, o, window, latent_rate)
        x1.append(bank.src_lat[s][k][crop["lat"]].float())
        clip.append(crop["clip"].float())
        sync.append(crop["sync"].float())
    clip_f = video_features.clip_proj(torch.stack(clip))
    text_f = text_features(text_encoder, tokenizer, pick.caption)
    return torch.stack(x1), clip_f, torch.stack(sync), text_f


def build_bank(seeds: Sequence[int], duration: float, codec: MelCodec, video_features: VideoFeatures,
               size: int = 64, quiet: bool = True) -> SceneBank:
    """Render FoleyWorld scenes once into training tensors (see :class:`SceneBank`)."""
    from models.training import foleyworld as fw

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


CODEC_LOG_FLOOR = 5e-2
# 32 ms window, 16 ms hop, 32 mel bands, two frames per 64-dim latent token (31.25 tokens/s),
# Griffin-Lim on the analysis hop itself: see models/demo_family/codec.py.
CODEC_ANALYSIS = {"n_fft": 512, "hop_length": 256, "n_mels": 32, "frames_per_latent": 2,
                  "griffin_lim_oversample": 1}


def fit_codec(seeds: Sequence[int], duration: float = 8.0, log_floor: float = CODEC_LOG_FLOOR) -> MelCodec:
    """The bundle's codec with its per-bin normalisation fitted on FoleyWorld soundtracks.

    The log floor sets how much of the normalised range silence takes. FoleyWorld sources are
    digitally silent between events, so at ε = 1e-5 (log −11.5) silence and sound split the
    per-bin σ (≈ 5.6 nats) and every sound is squeezed into a band about 1.4 units wide: the
    dense classes (helicopter, waves, chainsaw, rain, fire) sat 0.24 units apart on average
    (RMS distance of their mean latents), below what a small network renders against unit
    noise. At ε = 0.05 (log −3.0, ~70 dB under the loudest mel band) σ ≈ 2.0 and they sit
    0.66 apart. Measured on the base network (1500 steps, n = 44 held-out single-source
    scenes): evaluator top-1 27 % at ε = 1e-5, 61 % at 1e-2, 64 % at 0.05."""
    from models.training import foleyworld as fw

    codec = MelCodec(log_floor=log_floor, **CODEC_ANALYSIS)
    waves = []
    for s in seeds:
        sc = fw.make_scene(int(s), duration, None, 64)
        waves += [torch.from_numpy(src.audio) for src in sc.sources]
    codec.fit_normalization(waves)
    return codec


def caption_vocabulary() -> list[str]:
    from models.training import foleyworld as fw

    return [c for caps in fw.CAPTIONS.values() for c in caps] + list(fw.CLASSES)


def pretrain_text_encoder(text_encoder: TextEncoder, tokenizer, steps: int, seed: int = 0,
                          batch: int = 32) -> float:
    """Warm start for the caption encoder: classify FoleyWorld captions into their class.

    A linear head on the mask-averaged token features, cross-entropy, AdamW 1e-3; the head is
    thrown away. The flow-matching run then starts from text features that already separate
    the classes (paraphrases of one class close together) instead of from random ones.
    Returns the final batch accuracy."""
    from models.training import foleyworld as fw

    pairs = [(cap, i) for i, c in enumerate(fw.CLASSES) for cap in (*fw.CAPTIONS[c], c)]
    head = nn.Linear(text_encoder.config.text_dim, len(fw.CLASSES))
    opt = torch.optim.AdamW([*text_encoder.parameters(), *head.parameters()], lr=1e-3)
    acc = 0.0
    for step in range(steps):
        gen = step_generator(seed, "text-warmup", step)
        idx = torch.randint(len(pairs), (batch,), generator=gen)
        caps, labels = [pairs[int(i)][0] for i in idx], torch.tensor([pairs[int(i)][1] for i in idx])
        ids, mask = tokenize(tokenizer, caps, text_encoder.config.text_seq_len)
        feats = text_encoder(ids, mask)
        m = mask.unsqueeze(-1).to(feats.dtype)
        logits = head((feats * m).sum(1) / m.sum(1).clamp(min=1))
        loss = nn.functional.cross_entropy(logits, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        acc = float((logits.argmax(1) == labels).float().mean())
    return acc


def train_base(out: Path, *, seed: int = 0, threads: int = 1, steps: int = 3000, batch: int = 8,
               scenes: int = 600, ema_decay: float = 0.999, text_warmup_steps: int = 300,
               minutes: float | None = None, quiet: bool = False) -> dict[str, Any]:
    """Base network + clip projection + text encoder (flow matching, CFG dropout, EMA)."""
    from models.training import foleyworld as fw
    from models.generation.mmaudio import MMAudio

    set_determinism(seed, threads)
    run_dir = Path(out) / "_runs" / "base"
    run_dir.mkdir(parents=True, exist_ok=True)
    seeds = list(fw.SPLITS["train"])[: scenes]
    codec = fit_codec(seeds[:60])
    video_features = VideoFeatures(seed=seed)
    text_encoder = TextEncoder()
    tokenizer = build_tokenizer(caption_vocabulary(), max_length=16)
    if text_warmup_steps and not (run_dir / "state.pt").exists():
        pretrain_text_encoder(text_encoder, tokenizer, text_warmup_steps, seed)
    net = MMAudio.from_preset("tiny", latent_dim=codec.latent_dim)
    net.empty_string_feat.requires_grad_(True)  # our null text is learned, not an encoder output
    bank = build_bank(seeds, 8.0, codec, video_features)
    cfg = RunConfig("base", steps, batch, 3e-4, window=8.0, warmup=min(100, max(1, steps // 10)),
                    minutes_cap=minutes,
                    seed=seed, threads=threads, ckpt_every=100, ema_decay=ema_decay)
    trainer = Trainer(cfg, run_dir, {"transformer": net, "clip_proj": video_features.clip_proj,
                                     "text_encoder": text_encoder})

    def loss_fn(gen: torch.Generator, step: int) -> torch.Tensor:
        pick = pick_base_batch(bank, gen, batch, 8.0)
        x1, clip_f, sync_f, text_f = base_conditions(bank, pick, 8.0, codec.latent_rate, video_features,
                                                     text_encoder, tokenizer)
        drop_t = torch.rand(batch, generator=gen) < cfg.null_text_p
        drop_v = torch.rand(batch, generator=gen) < cfg.null_video_p
        text_f = null_fill(text_f, drop_t, net.empty_string_feat[None])
        clip_f = null_fill(clip_f, drop_v, net.empty_clip_feat[None])
        sync_f = null_fill(sync_f, drop_v, net.empty_sync_feat[None])
        return flow_matching_loss(lambda xt, t: net(xt, clip_f, sync_f, text_f, t), x1, gen)

    summary = trainer.run(loss_fn, quiet=quiet)
    trainer.load_ema_into_modules()
    net.empty_string_feat.requires_grad_(False)
    for name, module in (("transformer", net), ("codec", codec), ("video_features", video_features),
                         ("text_encoder", text_encoder)):
        module.save_pretrained(Path(out) / name)
    tokenizer.save_pretrained(Path(out) / "tokenizer")
    return summary


class FoleyWorldPairs:
    """The demo's guidance pairs: 4 s halves of 8 s FoleyWorld scenes (target = one half, x̃ = the
    other; clip features are the raw 8 fps grid, projected by the caller's frozen head)."""

    def __init__(self, bank: SceneBank, latent_rate: float, seeds: Sequence[int]) -> None:
        self.bank, self.latent_rate, self.seeds = bank, latent_rate, list(seeds)
        self.half = int(math.ceil(4.0 * latent_rate - 1e-6))

    def pairs(self, gen: torch.Generator, n: int) -> PairBatch:
        x1, cond, clip, sync = [], [], [], []
        for _ in range(n):
            s = int(torch.randint(len(self.bank), (1,), generator=gen))
            first = bool(torch.randint(2, (1,), generator=gen))
            tgt_off, cond_off = (0, 32) if first else (32, 0)
            crop = crop_window(self.bank, s, tgt_off, 4.0, self.latent_rate)
            x1.append(self.bank.mix_lat[s][crop["lat"]].float())
            ccrop = crop_window(self.bank, s, cond_off, 4.0, self.latent_rate)
            cond.append(self.bank.mix_lat[s][ccrop["lat"]].float()[: self.half])
            clip.append(crop["clip"].float())
            sync.append(crop["sync"].float())
        return PairBatch(torch.stack(x1), torch.stack(cond), torch.stack(clip), torch.stack(sync))

    probe_pairs = pairs

    def identity(self) -> dict[str, Any]:
        return {"kind": "foleyworld", "scenes": len(self.seeds), "first_seed": self.seeds[0],
                "last_seed": self.seeds[-1]}


def train_guidance(out: Path, *, seed: int = 0, threads: int = 1, steps: int = 3000, batch: int = 8,
                   scenes: int = 400, minutes: float | None = None, quiet: bool = False,
                   features: Path | None = None, grad_accum: int = 1) -> dict[str, Any]:
    """u_ψ for the bundle at ``out`` (models/training/guidance.py), on extracted real-footage
    ``features`` (stepfoley extract-features) or, by default, on FoleyWorld: target = one 4 s
    half of a scene's soundtrack, condition = the other half, video of the target half."""
    # guidance.py builds on this module's Trainer: imported on use to keep the graph a tree.
    from models.training.guidance import train_guidance_on
    from models.training.guidance_sources import ShardPairs

    out = Path(out)
    if features is not None:
        rank, world = rank_and_world()
        return train_guidance_on(out, ShardPairs(features, rank=rank, world=world), steps=steps,
                                 batch=batch, seed=seed, threads=threads, grad_accum=grad_accum,
                                 minutes=minutes, quiet=quiet)
    set_determinism(seed, threads)
    codec = MelCodec.from_pretrained(out / "codec")
    video_features = VideoFeatures.from_pretrained(out / "video_features").requires_grad_(False)
    seeds = list(fw.SPLITS["train"])[100_000: 100_000 + scenes]
    source = FoleyWorldPairs(build_bank(seeds, 8.0, codec, video_features), codec.latent_rate, seeds)

    @torch.no_grad()
    def project(b: PairBatch) -> PairBatch:
        return dataclasses.replace(b, clip=video_features.clip_proj(b.clip))

    return train_guidance_on(out, source, steps=steps, batch=batch, seed=seed, threads=threads,
                             grad_accum=grad_accum, minutes=minutes, quiet=quiet, transform=project)


def assemble_bundle(out: Path) -> Path:
    """Write model_index.json for the StepByStepV2APipeline layout from the trained parts."""
    from models.demo_family.codec import MelCodec as _C  # noqa: F401  (registered for from_pretrained)
    from models.generation.controlnet import AudioControlNet
    from models.generation.mmaudio import MMAudio
    from models.generation.pipeline import StepByStepV2APipeline
    from transformers import PreTrainedTokenizerFast

    out = Path(out)
    pipe = StepByStepV2APipeline(
        transformer=MMAudio.from_pretrained(out / "transformer"),
        controlnet=AudioControlNet.from_pretrained(out / "controlnet"),
        codec=MelCodec.from_pretrained(out / "codec"),
        video_features=VideoFeatures.from_pretrained(out / "video_features"),
        text_encoder=TextEncoder.from_pretrained(out / "text_encoder"),
        tokenizer=PreTrainedTokenizerFast.from_pretrained(out / "tokenizer"))
    pipe.save_pretrained(out)
    return out


def to_half(out: Path) -> None:
    """Store the large weight files in bfloat16 (loads back as float32 via torch_dtype)."""
    from safetensors.torch import load_file, save_file

    for f in Path(out).glob("*/diffusion_pytorch_model.safetensors"):
        sd = load_file(f)
        save_file({k: (v.to(torch.bfloat16) if v.is_floating_point() and v.numel() > 4096 else v)
                   for k, v in sd.items()}, f)


def train_component(component: str, out: Path, *, seed: int = 0, threads: int = 1,
                    steps: int | None = None, minutes: float | None = None, quiet: bool = False) -> dict[str, Any]:
    """`stepfoley train COMPONENT`: one part of the bundle (or `all`), resumable."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(threads)
    results: dict[str, Any] = {}
    t0 = time.time()
    if component in ("base", "all"):
        results["base"] = train_base(out, seed=seed, threads=threads, steps=steps or 3000,
                                     minutes=(minutes * 0.45 if minutes and component == "all" else minutes),
                                     quiet=quiet)
    if component in ("guidance", "all"):
        results["guidance"] = train_guidance(out, seed=seed, threads=threads, steps=steps or 3000,
                                             minutes=(minutes * 0.3 if minutes and component == "all" else minutes),
                                             quiet=quiet)
    if component in ("base", "guidance", "all") and (out / "controlnet").is_dir() and (out / "transformer").is_dir():
        assemble_bundle(out)
    if component in ("captioner", "all"):
        from models.training.captioner_train import train_captioner

        results["captioner"] = train_captioner(out / "captioner", **_kw(steps, seed, threads, component))
    if component in ("scorer", "all"):
        from models.training.scorer_train import train_scorer

        results["scorer"] = train_scorer(out / "scorer", **_kw(steps, seed, threads, component))
    if component in ("evaluator", "all"):
        from models.evaluation.evaluator import train_evaluator

        results["evaluator"] = train_evaluator(out / "evaluator", **_kw(steps, seed, threads, component))
    results["wall_s"] = round(time.time() - t0, 1)
    (out / "_runs").mkdir(exist_ok=True)
    (out / "_runs" / f"train_{component}.json").write_text(json.dumps(results, indent=2, default=str))
    return results


def _kw(steps: int | None, seed: int, threads: int, component: str) -> dict[str, Any]:
    kw: dict[str, Any] = {"seed": seed, "threads": threads}
    if steps is not None and component != "all":
        kw["steps"] = steps
    return kw
