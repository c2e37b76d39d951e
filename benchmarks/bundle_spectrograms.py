"""The bundle README's picture: per class, a held-out FoleyWorld source next to the bundle's
track for the same video and that source's caption (25 Euler steps, CFG α 4.5, no negative).

    .venv/bin/python benchmarks/bundle_spectrograms.py BUNDLE [--out PNG] [--seed-offset 9000]

Each row is one class: left the isolated ground-truth source, right the generated track, both as
the bundle codec's log-mel (64 bins, 8 s) on one colour scale, and the evaluator's top class of
the generated track in the title, so the picture and the gate numbers can be read together.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.training import foleyworld as fw  # noqa: E402
from models.generation.bundle import load_bundle  # noqa: E402
from models.evaluation.evaluator import load_evaluator  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("bundle")
    ap.add_argument("--out", default=None)
    ap.add_argument("--seed-offset", type=int, default=9000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    bundle = Path(args.bundle)
    pipe = load_bundle(bundle)
    pipe.set_progress_bar_config(disable=True)
    ev = load_evaluator(bundle / "evaluator")
    rows = []
    for i, cls in enumerate(fw.CLASSES):
        sc = fw.make_scene(fw.SPLITS["test"].start + args.seed_offset + i, 8.0, 1, 64, classes=[cls])
        src = sc.sources[0]
        out = pipe.generate_track(fw.model_video(sc.frames), 8.0, src.caption, seed=i)
        scores = ev.class_scores(out.waveform, 16000)
        with torch.no_grad():
            real = pipe.codec.log_mel(torch.from_numpy(src.audio))[0].T.numpy()
            gen = pipe.codec.log_mel(torch.from_numpy(out.waveform.astype(np.float32)))[0].T.numpy()
        rows.append((cls, src.caption, real, gen, max(scores, key=scores.get)))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lo = max(min(r[2].min() for r in rows), float(np.log(pipe.codec.config.log_floor)))
    hi = max(max(r[2].max(), r[3].max()) for r in rows)
    fig, axes = plt.subplots(len(rows), 2, figsize=(9, 1.25 * len(rows)), dpi=100)
    for (cls, caption, real, gen, top), (a, b) in zip(rows, axes):
        a.imshow(real, origin="lower", aspect="auto", cmap="magma", vmin=lo, vmax=hi)
        b.imshow(gen[:, : real.shape[1]], origin="lower", aspect="auto", cmap="magma", vmin=lo, vmax=hi)
        a.set_title(f"{cls}: FoleyWorld source (ground truth)", fontsize=8)
        b.set_title(f'generated: "{caption}" (evaluator top-1: {top})', fontsize=8)
        for ax in (a, b):
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    out_png = Path(args.out) if args.out else bundle / "spectrograms.png"
    tmp = out_png.with_suffix(".tmp.png")
    fig.savefig(tmp)
    tmp.replace(out_png)
    hits = sum(r[0] == r[4] for r in rows)
    print(f"{out_png}: {len(rows)} classes, evaluator top-1 = prompted class for {hits}/{len(rows)}")


if __name__ == "__main__":
    main()
