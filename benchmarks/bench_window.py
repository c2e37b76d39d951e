"""Whole-track and whole-window cost of step-by-step NAG on the shipped bundle (on demand).

    .venv/bin/python benchmarks/bench_window.py [--bundle DIR] [--tracks 5] [--steps 25] [--repeats 3]

One 8 s FoleyWorld window with K prompts, the full pipeline call (video features, text, codec
encode of the negative audio, the ODE, Griffin-Lim decode):

* ``nag``: track 1 is plain CFG (nothing exists yet), tracks 2…K are NAG against the sum of the
  earlier tracks — what `stepfoley run` does per window;
* ``independent``: K CFG tracks (MMAudio run once per prompt).

Reported: per-track times (median over repeats), whole-window times and their ratio, and the
share of a NAG track spent outside the ODE (encode + decode). Interleaved repeats, same process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.training import foleyworld as fw  # noqa: E402
from models.generation.bundle import load_bundle  # noqa: E402
from models.training.train import DEFAULT_BUNDLE_DIR  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default=str(DEFAULT_BUNDLE_DIR))
    ap.add_argument("--tracks", type=int, default=5)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pipe = load_bundle(args.bundle)
    pipe.set_progress_bar_config(disable=True)
    sc = fw.make_scene(fw.SPLITS["test"].start + 77, 8.0, 3, 64)
    video = fw.model_video(sc.frames)
    prompts = [fw.CAPTIONS[c][0] for c in fw.CLASSES[: args.tracks]]
    per_track: dict[str, list[list[float]]] = {"nag": [], "independent": []}
    window: dict[str, list[float]] = {"nag": [], "independent": []}
    for r in range(args.repeats):
        for mode in ("nag", "independent"):
            times, mix = [], None
            t_win = time.perf_counter()
            for k, p in enumerate(prompts):
                t = time.perf_counter()
                out = pipe.generate_track(video, 8.0, p, negative_audio=mix if mode == "nag" else None,
                                          mode=mode, num_inference_steps=args.steps, seed=k)
                times.append(time.perf_counter() - t)
                mix = out.waveform.copy() if mix is None else mix + out.waveform
            window[mode].append(time.perf_counter() - t_win)
            per_track[mode].append(times)
    med = {m: [statistics.median(col) for col in zip(*v)] for m, v in per_track.items()}
    t0 = time.perf_counter()
    for _ in range(args.repeats):
        pipe.decode_latent(torch.zeros(1, pipe._lengths(8.0)["latent"], pipe.transformer.config.latent_dim), 128000)
    decode_s = (time.perf_counter() - t0) / args.repeats
    res = {
        "bundle": args.bundle, "threads": args.threads, "steps": args.steps, "K": args.tracks,
        "track_s": {m: [round(x, 3) for x in v] for m, v in med.items()},
        "window_s": {m: round(statistics.median(v), 3) for m, v in window.items()},
        "nag_over_independent_window": round(statistics.median(window["nag"]) / statistics.median(window["independent"]), 3),
        "nag_track_over_cfg_track": round(statistics.median(med["nag"][1:]) / statistics.median(med["independent"][1:]), 3),
        "decode_s": round(decode_s, 3),
    }
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
