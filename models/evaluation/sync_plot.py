"""Onset rasters of a synchronisation run: per scene, the visual event times of the prompted
source (grey bands of ±80 ms, the matching tolerance, around each), then the onsets detected in
the real source audio (ceiling), the generated track (own video) and the shuffled-video control
(floor); a tick inside a band is a match. Each row's title gives its onset F1."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from models.evaluation.sync import TOLERANCE

ROWS = (("ceiling", "real source", "tab:green"), ("generated", "generated (own video)", "tab:blue"),
        ("floor", "shuffled video", "tab:red"))


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def pick_examples(rows: Sequence[dict[str, Any]], per_class: int = 1) -> list[tuple[int, str]]:
    """(scene, class) pairs in first-seen order, at most ``per_class`` per class."""
    seen: dict[str, int] = {}
    out = []
    for r in rows:
        key = (r["scene"], r["class"])
        if key in out or seen.get(r["class"], 0) >= per_class:
            continue
        seen[r["class"]] = seen.get(r["class"], 0) + 1
        out.append(key)
    return out


def plot_onset_rasters(rows: Sequence[dict[str, Any]], path: str | Path, examples: int = 6,
                       duration: float = 8.0) -> Path:
    """One panel per (scene, class) of the first ``examples`` picked, a row per track."""
    plt = _plt()
    keys = pick_examples(rows)[:examples]
    fig, axes = plt.subplots(len(keys), 1, figsize=(9, 1.25 * len(keys) + 0.5), dpi=110, squeeze=False)
    for ax, (scene, cls) in zip(axes[:, 0], keys):
        mine = {r["role"]: r for r in rows if r["scene"] == scene and r["class"] == cls}
        events = next(iter(mine.values()))["events"]
        for e in events:
            ax.axvspan(e - TOLERANCE, e + TOLERANCE, color="0.85", lw=0)
        ax.eventplot([events], lineoffsets=[3], linelengths=0.8, colors=["black"], linewidths=2)
        labels = ["visual events"]
        for k, (role, name, colour) in enumerate(ROWS):
            r = mine.get(role)
            labels.append(f"{name}  F1 {r['f1']:.2f}" if r else name)
            if r and r["onsets"]:
                ax.eventplot([r["onsets"]], lineoffsets=[2 - k], linelengths=0.8, colors=[colour], linewidths=1.5)
        ax.set_yticks([3, 2, 1, 0], labels, fontsize=7)
        ax.set_ylim(-0.6, 3.6)
        ax.set_xlim(0, duration)
        ax.set_title(f"scene {scene}: {cls} — “{next(iter(mine.values()))['prompt']}”", fontsize=8, loc="left")
        ax.tick_params(axis="x", labelsize=7)
    axes[-1, 0].set_xlabel("time (s)", fontsize=8)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out)
    plt.close(fig)
    return out
