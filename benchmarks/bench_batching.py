"""Throughput of track k of B windows in one batched ODE vs B unbatched tracks (issue #18 §2).

    .venv/bin/python benchmarks/bench_batching.py [--preset tiny] [--steps 25] [--bs 1 2 4 8]
        [--threads 1] [--repeats 3] [--json FILE]

Random weights of the preset (the cost does not depend on their values), demo-family codec and
features, 8 s windows with negative audio (NAG tracks: 3·B rows per step), 1 torch thread.
For each B: the median wall of B calls of ``generate_track`` and of one
``generate_tracks_batched`` call on the same B requests, interleaved; reported as windows per
second and the ratio batched / unbatched. Also the share of a track spent outside the ODE
(features, the negative's encode, the Griffin-Lim decode), which batching does not touch.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build(preset: str):  # type: ignore[no-untyped-def]
    from models.demo_family.codec import MelCodec
    from models.demo_family.features import TextEncoder, VideoFeatures, build_tokenizer
    from models.generation.controlnet import AudioControlNet
    from models.generation.mmaudio import MMAudio
    from models.generation.pipeline import StepByStepV2APipeline

    torch.manual_seed(0)
    net = MMAudio.from_preset(preset)
    cn = AudioControlNet.from_transformer(net)
    tok = build_tokenizer(["a dog barks", "rain falls", "footsteps", "wind"], max_length=16)
    return StepByStepV2APipeline(transformer=net, controlnet=cn, codec=MelCodec(),
                                 video_features=VideoFeatures(), text_encoder=TextEncoder(),
                                 tokenizer=tok).to(torch.device("cpu"))


def main() -> int:
    from models.generation.batched import TrackRequest, generate_tracks_batched

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--bs", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pipe = build(args.preset)
    sr = pipe.codec.sample_rate
    rng = np.random.default_rng(0)
    specs = pipe.video_features.frame_specs()

    def request(i: int) -> TrackRequest:
        video = {k: rng.integers(0, 255, (int(8 * s.fps), s.size, s.size, 3), dtype=np.uint8)
                 for k, s in specs.items()}
        neg = (0.1 * rng.standard_normal(8 * sr)).astype(np.float32)
        return TrackRequest(video, 8.0, "rain falls", neg, seed=i, alpha=4.5, beta=1.5,
                            steps=args.steps)

    rows = []
    generate_tracks_batched(pipe, [request(0)])  # warm-up
    for b in args.bs:
        reqs = [request(i) for i in range(b)]
        one, bat = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            for r in reqs:
                pipe.generate_track(video=r.video, duration=r.duration, prompt=r.prompt,
                                    negative_audio=r.negative_audio, alpha=r.alpha, beta=r.beta,
                                    num_inference_steps=r.steps, seed=r.seed)
            one.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            generate_tracks_batched(pipe, reqs)
            bat.append(time.perf_counter() - t0)
        u, v = statistics.median(one), statistics.median(bat)
        rows.append({"B": b, "unbatched_s": round(u, 3), "batched_s": round(v, 3),
                     "windows_per_s_unbatched": round(b / u, 3),
                     "windows_per_s_batched": round(b / v, 3),
                     "throughput_ratio": round(u / v, 3)})
        print(rows[-1], file=sys.stderr, flush=True)
    # the part of one track outside the ODE (features, negative encode, decode)
    r = request(0)
    t0 = time.perf_counter()
    pipe.generate_track(video=r.video, duration=8.0, prompt=r.prompt, negative_audio=r.negative_audio,
                        alpha=4.5, beta=1.5, num_inference_steps=1, seed=0)
    fixed = time.perf_counter() - t0
    result = {"preset": args.preset, "steps": args.steps, "threads": args.threads,
              "rows": rows, "one_step_track_s (≈ the per-track fixed part)": round(fixed, 3)}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
