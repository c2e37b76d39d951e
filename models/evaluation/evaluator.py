"""The evaluation judge: a small log-mel CNN that tags FoleyWorld classes in audio.

Front end (fixed, not learned): 16 kHz mono → STFT (n_fft 512, hop 256, Hann) → power →
64 triangular mel bands (HTK mel, 40 Hz–7.6 kHz) → ``log(mel + 1e-6)``, then a per-band
affine ``(x + 6) / 4`` so the input sits roughly in [-2, 2] (no data statistics needed).

Network: four blocks ``conv3×3 → BatchNorm → ReLU → 2×2 average-pool`` (16, 32, 64, 128
channels), then over time the mean and the max of the remaining frequency-averaged map are
concatenated and projected to a ``D = 128`` embedding; a linear head gives one logit per
class. Multi-label: ``p_c = sigmoid(logit_c)`` since a mixture holds several classes; trained
with binary cross-entropy against the set of classes present.

Honesty of the judge (issue 9): it trains only on seeds of ``SPLITS["evaluator"]``, whose
scenes are voiced by the evaluator group of the real recordings (``RECORDING_SPLIT``), which
the generator never hears; ``evaluate_heldout`` reports accuracy on the *test* group of
recordings, i.e. real clips neither model has heard.

Training recipe: AdamW (lr 2e-3, wd 1e-4), cosine decay, batch 16 of 4 s crops. Each
example is, with probability ¼, a raw crop of an evaluator-group recording (single label);
otherwise an evaluator-split scene, half the time one source alone (single label) and half
the whole mixture (all its classes); then a random spectral tilt and ±1.5 semitone pitch
(``_colour``) and a random gain of −24…+3 dB (peak kept < 1), and half the time a steady
noise floor of −85…−45 dBFS (``noise_floor``: the judge must not take digital silence for a
class cue). The batch for step ``s`` is a pure
function of ``(seed, s)``, so a run resumed from its last checkpoint continues identically.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from models.training import foleyworld as fw

N_FFT, HOP, N_MELS = 512, 256, 64
CROP_S = 4.0


def mel_filterbank(sr: int = fw.SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS,
                   fmin: float = 40.0, fmax: float = 7600.0) -> torch.Tensor:
    """Triangular HTK-mel filters ``[n_mels, n_fft // 2 + 1]``."""
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    inv = lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1.0)  # noqa: E731
    edges = inv(np.linspace(mel(fmin), mel(fmax), n_mels + 2))
    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    fb = np.maximum(0.0, np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)))
    return torch.from_numpy(fb.astype(np.float32))


def _resample(wave: np.ndarray, sr: int) -> np.ndarray:
    """Linear-interpolation resampling to 16 kHz (only used for foreign rates)."""
    if sr == fw.SAMPLE_RATE:
        return wave
    n = int(round(len(wave) * fw.SAMPLE_RATE / sr))
    return np.interp(np.linspace(0, len(wave) - 1, n), np.arange(len(wave)), wave).astype(np.float32)


class AudioEvaluator(ModelMixin, ConfigMixin):
    """Log-mel CNN tagger: ``forward(wave [B, N]) -> (embedding [B, D], logits [B, C])``."""

    @register_to_config
    def __init__(self, classes: tuple[str, ...] | list[str] = fw.CLASSES, dim: int = 128,
                 widths: tuple[int, ...] | list[int] = (16, 32, 64, 128),
                 sample_rate: int = fw.SAMPLE_RATE) -> None:
        super().__init__()
        self.register_buffer("fb", mel_filterbank(sample_rate), persistent=False)
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)
        layers: list[nn.Module] = []
        c_in = 1
        for c in widths:
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
                       nn.AvgPool2d(2)]
            c_in = c
        self.body = nn.Sequential(*layers)
        self.proj = nn.Linear(2 * c_in, dim)
        self.head = nn.Linear(dim, len(classes))

    def logmel(self, wave: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(wave, N_FFT, HOP, window=self.window, return_complex=True).abs() ** 2
        return (torch.log(self.fb @ spec + 1e-6) + 6.0) / 4.0  # [B, mels, frames]

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(self.logmel(wave)[:, None]).mean(2)  # [B, C, frames']
        emb = self.proj(torch.cat([h.mean(-1), h.amax(-1)], dim=1))
        return emb, self.head(F.relu(emb))

    # -- numpy conveniences used by evaluation ----------------------------------------------
    def _prep(self, wave: np.ndarray, sr: int) -> torch.Tensor:
        x = _resample(np.asarray(wave, np.float32).reshape(-1), sr)
        min_len = HOP * 2 ** 4  # four 2× poolings need ≥ 16 STFT frames: pad with silence
        if len(x) < min_len:
            x = np.pad(x, (0, min_len - len(x)))
        return torch.from_numpy(x)[None].to(self.device)

    @torch.no_grad()
    def embed(self, wave: np.ndarray, sr: int = fw.SAMPLE_RATE) -> np.ndarray:
        """Embedding ``[D]`` of one waveform (compare with cosine similarity)."""
        self.eval()
        return self(self._prep(wave, sr))[0][0].cpu().numpy()

    @torch.no_grad()
    def class_scores(self, wave: np.ndarray, sr: int = fw.SAMPLE_RATE) -> dict[str, float]:
        """Independent per-class probabilities (sigmoid) for one waveform."""
        self.eval()
        p = torch.sigmoid(self(self._prep(wave, sr))[1][0]).cpu().numpy()
        return {c: float(v) for c, v in zip(self.config.classes, p)}


# ------------------------------------------------------------------------------ data
def _real_crop(cls: str, rng: np.random.Generator, n: int, group: str) -> np.ndarray | None:
    """A crop of one raw recording of ``group`` (short ones placed at a random offset in
    silence), or None when the class is synthesised only."""
    recs = fw.recordings(cls, group)
    if not recs:
        return None
    rec = recs[int(rng.integers(len(recs)))]
    out = np.zeros(n, np.float32)
    if len(rec) >= n:
        s = int(rng.integers(0, len(rec) - n + 1))
        out[:] = rec[s:s + n]
    else:
        s = int(rng.integers(0, n - len(rec) + 1))
        out[s:s + len(rec)] = rec
    return out


def _colour(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Recording-to-recording variation the judge must ignore: a random spectral tilt.

    ``y = x + a·(x − x[n−1])`` with ``a ∈ [−0.6, 0.6]`` (first difference boosts highs, its
    negative is a gentle low-pass), then a random speed/pitch change of ±1.5 semitones
    (``foleyworld.pitch_shift``), cropped/padded back to the input length.
    """
    a = rng.uniform(-0.6, 0.6)
    y = x + a * np.diff(x, prepend=x[:1])
    y = fw.pitch_shift(y, rng.uniform(-1.5, 1.5))
    n = len(x)
    return (y[:n] if len(y) >= n else np.pad(y, (0, n - len(y)))).astype(np.float32)


def noise_floor(rng: np.random.Generator, n: int, level_dbfs: float) -> np.ndarray:
    """A steady noise floor at ``level_dbfs`` RMS, white to gently tilted (``_colour``'s tilt).

    FoleyWorld's sources and the real recordings are often digitally silent between events;
    generated audio never is (a vocoder leaves a low-level floor). A judge trained without a
    floor learned silence as a cue: a −60 dBFS white floor under held-out ground truth turned
    its top-1 from 95 % to 75 % (dog, footsteps → clock; knocking → fire), and the bundle
    codec's round trip of the same clips scored 80 % whatever the codec's log floor."""
    a = rng.uniform(-0.9, 0.9)
    w = rng.standard_normal(n)
    w = w + a * np.diff(w, prepend=w[:1])
    w *= 10 ** (level_dbfs / 20) / (np.sqrt((w ** 2).mean()) + 1e-12)
    return w.astype(np.float32)


def _example(seed: int, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """One training crop and its multi-hot target.

    ¼ raw crops of the evaluator group of real recordings (so the judge hears the real
    thing, not only FoleyWorld's placement of it), otherwise an evaluator-split scene: ½ one
    source alone, ½ the whole mixture. Random gain −24…+3 dB so scores do not depend on level.
    """
    wave: np.ndarray | None = None
    if rng.random() < 0.25:
        cls = fw.CLASSES[int(rng.integers(len(fw.CLASSES)))]
        wave, present = _real_crop(cls, rng, n, "evaluator"), [cls]
    if wave is None:
        sc = fw.make_scene(fw.check_split(seed, "evaluator"), CROP_S + 1.0, size=16)
        if rng.random() < 0.5:
            src = sc.sources[int(rng.integers(len(sc.sources)))]
            full, present = src.audio, [src.cls]
        else:
            full, present = sc.mixture, [s.cls for s in sc.sources]
        start = int(rng.integers(0, len(full) - n + 1))
        wave = full[start:start + n]
    wave = _colour(wave, rng)
    peak = float(np.abs(wave).max()) + 1e-6
    gain = min(10 ** (rng.uniform(-24, 3) / 20), 0.95 / peak)
    crop = (wave * gain).astype(np.float32)
    if rng.random() < 0.5:
        crop = crop + noise_floor(rng, n, rng.uniform(-85.0, -45.0))
    y = np.array([c in present for c in fw.CLASSES], np.float32)
    return crop, y


def batch_for_step(seed: int, step: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch of step ``step``: a pure function of (seed, step) so resumes are exact."""
    rng = np.random.default_rng([int(seed), int(step)])
    r = fw.SPLITS["evaluator"]
    n = int(CROP_S * fw.SAMPLE_RATE)
    xs, ys = zip(*(_example(r.start + int(rng.integers(len(r))), rng, n) for _ in range(batch)))
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


# ------------------------------------------------------------------------------ training
def _save_ckpt(path: Path, model: AudioEvaluator, opt: torch.optim.Optimizer, step: int,
               log: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "log": log}, tmp)
    tmp.replace(path)


def _plot(log: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r["step"] for r in log], [r["loss"] for r in log], lw=0.8)
    ax.set_xlabel("step"); ax.set_ylabel("BCE loss"); ax.set_title("evaluator training")
    fig.tight_layout(); fig.savefig(path, dpi=100); plt.close(fig)


def train_evaluator(out_dir: str | Path, steps: int = 1000, seed: int = 0, threads: int = 1,
                    batch: int = 16, lr: float = 2e-3, ckpt_every: int = 100,
                    heldout: bool = True) -> dict:
    """Train the evaluator into ``out_dir`` (diffusers layout + log.json + loss.png).

    Deterministic given (seed, threads); resumes from ``out_dir/checkpoint.pt`` if present.
    Returns the summary written to ``out_dir/log.json``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(int(threads))
    torch.manual_seed(int(seed))
    model = AudioEvaluator()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / max(steps, 1)))  # noqa: E731
    ckpt = out / "checkpoint.pt"
    log: list[dict] = []
    start = 0
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"]); opt.load_state_dict(state["opt"])
        start, log = int(state["step"]), list(state["log"])
    t0 = time.time()
    model.train()
    for step in range(start, steps):
        x, y = batch_for_step(seed, step, batch)
        for g in opt.param_groups:
            g["lr"] = lr * sched(step)
        loss = F.binary_cross_entropy_with_logits(model(x)[1], y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        log.append({"step": step, "loss": float(loss.detach())})
        if (step + 1) % ckpt_every == 0 or step + 1 == steps:
            _save_ckpt(ckpt, model, opt, step + 1, log)
    model.eval()
    model.save_pretrained(out)
    summary: dict = {"steps": steps, "seed": seed, "threads": threads, "batch": batch, "lr": lr,
                     "train_split": "evaluator", "recording_group": "evaluator",
                     "wall_s_this_run": round(time.time() - t0, 1), "log": log}
    if heldout:
        summary["heldout"] = evaluate_heldout(model)
    (out / "log.json").write_text(json.dumps(summary, indent=1))
    if log:
        _plot(log, out / "loss.png")
    return summary


def load_evaluator(path: str | Path) -> AudioEvaluator:
    return AudioEvaluator.from_pretrained(str(path)).eval()


# ------------------------------------------------------------------------------ held-out
@torch.no_grad()
def evaluate_heldout(model: AudioEvaluator, crops_per_file: int = 4, n_scenes: int = 60) -> dict:
    """The judge's own accuracy on data neither model heard.

    ``real_top1``: 4 s crops of the *test* group of real recordings (raw, unprocessed), top-1
    over all classes. ``scene_top1``: single-source FoleyWorld scenes from the test split
    (voiced by test recordings / unseen synthesiser draws). ``mixture_f1``: multi-label F1 at
    p > 0.5 on 1–3 source test scenes. ``scene_top1_white_floor_{60,50}dBFS``: the single-source
    scenes under a steady white floor at −60 / −50 dBFS RMS (the shipped judge: 0.75 / 0.67
    against 0.93 without, i.e. it reads digital silence as a cue; a retrain with a noise-floor
    augmentation reached 0.97 / 0.97, real clips 0.85, but judged generated tracks no higher).
    """
    model.eval()
    n = int(CROP_S * fw.SAMPLE_RATE)
    hits = total = 0
    per_class: dict[str, list[int]] = {}
    for cls in fw.CLASSES:
        for rec in fw.recordings(cls, "test"):
            k_max = crops_per_file if len(rec) > n else 1  # short files: one crop each
            if len(rec) < n:
                rec = np.pad(rec, ((n - len(rec)) // 2, n - len(rec) - (n - len(rec)) // 2))
            for k in range(k_max):
                s = int((len(rec) - n) * k / max(k_max - 1, 1))
                crop = rec[s:s + n]
                if np.sqrt((crop ** 2).mean()) < 1e-3:  # silent stretch: nothing to judge
                    continue
                sc = model.class_scores(crop)
                ok = int(max(sc, key=sc.get) == cls)
                hits += ok; total += 1
                per_class.setdefault(cls, []).append(ok)
    r = fw.SPLITS["test"]
    s_hits = 0
    tp = fp = fn = 0
    # The single-source scenes also under a steady white floor, as generated audio always has
    # one (a vocoder leaves it; FoleyWorld's sources are digitally silent between events).
    levels = (-60.0, -50.0)
    floor_hits = dict.fromkeys(levels, 0)
    for i in range(n_scenes):
        cls = fw.CLASSES[i % len(fw.CLASSES)]
        sc = fw.make_scene(r.start + 5000 + i, CROP_S, 1, size=16, classes=[cls])
        p = model.class_scores(sc.mixture)
        s_hits += int(max(p, key=p.get) == cls)
        for level in levels:
            w = np.random.default_rng([i, int(-level)]).standard_normal(len(sc.mixture))
            p = model.class_scores(sc.mixture + (10 ** (level / 20) * w).astype(np.float32))
            floor_hits[level] += int(max(p, key=p.get) == cls)
        mix = fw.make_scene(r.start + 6000 + i, CROP_S, size=16)
        truth = {s.cls for s in mix.sources}
        q = model.class_scores(mix.mixture)
        pred = {c for c, v in q.items() if v > 0.5}
        tp += len(pred & truth); fp += len(pred - truth); fn += len(truth - pred)
    floors = {f"scene_top1_white_floor_{int(-lv)}dBFS": k / n_scenes for lv, k in floor_hits.items()}
    return {"real_top1": hits / max(total, 1), "real_crops": total, **floors,
            "real_top1_per_class": {c: sum(v) / len(v) for c, v in per_class.items()},
            "scene_top1": s_hits / n_scenes,
            "mixture_f1": 2 * tp / max(2 * tp + fp + fn, 1)}
