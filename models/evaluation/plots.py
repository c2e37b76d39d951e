"""PNG figures of an evaluation: β sweep, per-class confusion, one example's spectrograms.

The example figure follows the paper's: one row per method, one column per generated track in
generation order, plus the scene's real isolated sources on top; log-mel (64 bins, 16 kHz,
hop 256) on one shared colour scale so loudness differences show.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from models.evaluation.evaluator import mel_filterbank


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_beta_sweep(rows: list[dict[str, Any]], judges: list[str], path: Path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), dpi=110)
    for j, marker in zip(judges, "os"):
        betas = [r["beta"] for r in rows]
        for ax, metric, scale in ((axes[0], "separability", 1.0), (axes[1], "fidelity", 100.0)):
            m = np.array([r[f"{j}_{metric}"]["mean"] for r in rows]) * scale
            lo = np.array([r[f"{j}_{metric}"]["lo"] for r in rows]) * scale
            hi = np.array([r[f"{j}_{metric}"]["hi"] for r in rows]) * scale
            ax.errorbar(betas, m, yerr=[m - lo, hi - m], marker=marker, capsize=3, label=j)
    axes[0].set_title("separability (cos ×100, lower = more distinct)")
    axes[1].set_title("text fidelity (score of the prompted class, %)")
    for ax in axes:
        ax.set_xlabel("β (NAG strength; 0 = independent CFG)")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_confusion(tracks: list[dict[str, Any]], conditions: list[str], path: Path) -> None:
    plt = _plt()
    classes = sorted({t["class"] for t in tracks} | {t["evaluator_top1"] for t in tracks})
    fig, axes = plt.subplots(1, max(1, len(conditions)), figsize=(4.6 * max(1, len(conditions)), 4.4), dpi=110,
                             squeeze=False)
    for ax, cond in zip(axes[0], conditions):
        m = np.zeros((len(classes), len(classes)))
        for t in tracks:
            if t["condition"] == cond:
                m[classes.index(t["class"]), classes.index(t["evaluator_top1"])] += 1
        rows = m.sum(1, keepdims=True)
        ax.imshow(np.divide(m, rows, out=np.zeros_like(m), where=rows > 0), cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(len(classes)), classes, rotation=70, fontsize=7)
        ax.set_yticks(range(len(classes)), classes, fontsize=7)
        ax.set_xlabel("evaluator top-1")
        ax.set_ylabel("prompted class")
        ax.set_title(cond, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def log_mel(wave: np.ndarray, sr: int) -> np.ndarray:
    import torch

    x = torch.from_numpy(np.asarray(wave, np.float32))
    spec = torch.stft(x, 1024, 256, window=torch.hann_window(1024), return_complex=True).abs() ** 2
    fb = mel_filterbank(sr, 1024, 64)
    return (10 * torch.log10(fb @ spec + 1e-8)).numpy()


def plot_examples(example: dict[str, Any], conditions: list[str], path: Path) -> None:
    plt = _plt()
    sr = int(example.get("_sample_rate", 16000))
    rows = [("real sources", example.get("_real", []))] + [(c, example.get(c, [])) for c in conditions]
    ncol = max(len(r[1]) for r in rows) or 1
    fig, axes = plt.subplots(len(rows), ncol, figsize=(3.0 * ncol, 1.9 * len(rows)), dpi=110, squeeze=False)
    for r, (name, items) in enumerate(rows):
        for c in range(ncol):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(items):
                ax.imshow(log_mel(items[c]["wave"], sr), origin="lower", aspect="auto", vmin=-80, vmax=20,
                          cmap="magma")
                ax.set_title(f"{items[c]['class']}: “{items[c]['prompt']}”", fontsize=7)
            else:
                ax.axis("off")
            if c == 0:
                ax.set_ylabel(name, fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
