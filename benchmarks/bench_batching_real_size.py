"""Batching B windows at real small_16k size (random weights) on this CPU: throughput vs B as
ratios to B = 1, and batched = unbatched within float tolerance (issue #18 §2).

Stages, each in this one process, its B values interleaved round-robin within every repeat (so
the shared machine's load hits them alike), medians of ``--repeats``:

    network, NAG step   one forward of 3·B rows ([∅; (V, C); (V, ∅)] × B), branch on the last B
                        rows, then ũ (models/generation/batched.py's velocity, step for step)
    network, CFG step   one forward of 2·B rows
    CLIP image tower    B frames at 384² in one call (a window is 64 frames: already a batch)
    Synchformer         B segments of 16 frames at 224² in one call (a window is 24 segments)
    CLIP text tower     B prompts of 77 tokens in one call

    throughput ratio(B) = B · t(1) / t(B)       (> 1: batching pays; 1: no gain; < 1: it costs)

t is this process's CPU time (one torch thread); the wall-time ratio is reported beside it.

Parity: every batched network step is compared row block by row block with the B = 1 step of
the same window (distinct random features, noise and negative latent per window); and one
end-to-end check, ``generate_tracks_batched`` against ``generate_track`` for 2 windows at real
size (real-size codec and text encoder, 1 Euler step, null video: the 64 CLIP frames per window
would cost ~15 min here and the video encoders' batching is timed above).

    .venv/bin/python benchmarks/bench_batching_real_size.py [--bs 1 2 4 8] [--repeats 3]
        [--video-bs 1 2 4] [--video-repeats 2] [--skip network clip sync text e2e] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_nag import randomize

from models.generation.batched import TrackRequest, generate_tracks_batched
from models.generation.controlnet import AudioControlNet
from models.generation.mmaudio import MMAudio, PreprocessedConditions
from models.generation.nag import nag_velocity
from models.generation.pipeline import StepByStepV2APipeline
from models.mmaudio_family.codec import MMAudioCodec
from models.mmaudio_family.lengths import sequence_lengths
from models.mmaudio_family.text_encoder import ClipTextEncoder
from models.mmaudio_family.video_features import MMAudioVideoFeatures

ALPHA, BETA = 4.5, 1.5
ATOL, RTOL = 1e-4, 1e-4  # float32; rows differ from the B = 1 forward only by matmul reassociation


def interleaved(fns: dict[int, Callable[[], object]], repeats: int, warm: bool = True
                ) -> dict[int, tuple[float, float]]:
    """Median (CPU seconds, wall seconds) of each fn, the fns run round-robin ``repeats`` times
    after one warm-up (``warm=False``: the caller has run each once already). CPU time of this
    process is the measure: with one torch thread it is what the work costs, while the wall
    time on the shared 2-core box is mostly other jobs' (here ~10× the CPU time at load 10)."""
    for fn in fns.values() if warm else ():
        fn()
    samples: dict[int, list[tuple[float, float]]] = {b: [] for b in fns}
    for _ in range(repeats):
        for b, fn in fns.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            samples[b].append((time.process_time() - c0, time.perf_counter() - t0))
    return {b: (statistics.median(c for c, _ in v), statistics.median(w for _, w in v)) for b, v in samples.items()}


def ratios(times: dict[int, tuple[float, float]]) -> list[dict]:
    c1, w1 = times[min(times)]
    return [{"B": b, "cpu_s": round(c, 3), "cpu_per_item_s": round(c / b, 3), "throughput_vs_B1": round(b * c1 / c, 3),
             "wall_s": round(w, 3), "wall_throughput_vs_B1": round(b * w1 / w, 3)} for b, (c, w) in sorted(times.items())]


def build_network() -> tuple[MMAudio, AudioControlNet]:
    torch.manual_seed(0)
    net = randomize(MMAudio.from_preset("small_16k"), 0).eval().requires_grad_(False)
    cn = randomize(AudioControlNet.from_transformer(net), 1).eval().requires_grad_(False)
    return net, cn


@torch.no_grad()
def network_stage(net: MMAudio, cn: AudioControlNet, bs: list[int], repeats: int) -> dict:
    """NAG and CFG steps of B windows; every batched output checked against B = 1 per window."""
    c = net.config
    lens = sequence_lengths(8.0, "16k")
    n, nc, ns = lens.latent_seq_len, lens.clip_seq_len, lens.sync_seq_len
    g = torch.Generator().manual_seed(0)
    w = max(bs)
    clip = torch.randn(w, nc, c.clip_dim, generator=g)
    sync = torch.randn(w, ns, c.sync_dim, generator=g)
    text = torch.randn(w, c.text_seq_len, c.text_dim, generator=g)
    x = torch.randn(w, n, c.latent_dim, generator=g)
    neg = torch.randn(w, n, c.latent_dim, generator=g)
    t = torch.full((1,), 0.37)

    def conditions(lo: int, hi: int, nag: bool) -> PreprocessedConditions:
        b = hi - lo
        cond = net.preprocess_conditions(clip[lo:hi], sync[lo:hi], text[lo:hi], n)
        parts = [net.get_empty_conditions(b, latent_len=n, clip_len=nc, sync_len=ns), cond]
        if nag:
            parts.append(net.preprocess_conditions(clip[lo:hi], sync[lo:hi],
                                                   net.empty_string_feat[None].expand(b, -1, -1), n))
        return PreprocessedConditions.cat(parts)

    def step(lo: int, hi: int, nag: bool) -> Callable[[], torch.Tensor]:
        b, k = hi - lo, 3 if nag else 2
        batched = conditions(lo, hi, nag)  # once per track, as the sampler does
        xx, tt = torch.cat([x[lo:hi]] * k), t.expand(k * b)

        def run() -> torch.Tensor:
            if nag:
                u0, u1, un = cn.predict_flow(net, xx, tt, batched, neg[lo:hi]).chunk(3)
                return nag_velocity(u0, u1, un, ALPHA, BETA)
            u0, u1 = net.predict_flow(xx, tt, batched).chunk(2)
            return nag_velocity(u0, u1, None, ALPHA, 0.0)
        return run

    out: dict = {"latent_tokens": n, "clip_tokens": nc, "sync_tokens": ns, "text_tokens": c.text_seq_len}
    for kind, nag in (("nag_step", True), ("cfg_step", False)):
        # the reference: each window alone (B = 1), the unbatched sampler's step
        ref = torch.cat([step(i, i + 1, nag)() for i in range(w)])
        fns = {b: step(0, b, nag) for b in bs}
        worst = 0.0
        for b, fn in fns.items():
            got = fn()
            if not torch.allclose(got, ref[:b], atol=ATOL, rtol=RTOL):
                raise AssertionError(f"{kind} B={b}: batched differs from unbatched by {(got - ref[:b]).abs().max()}")
            worst = max(worst, float((got - ref[:b]).abs().max()))
        out[kind] = ratios(interleaved(fns, repeats, warm=False))  # the parity call was the warm-up
        out[kind + "_parity_max_abs_diff"] = worst
        out[kind + "_velocity_abs_mean"] = float(ref.abs().mean())
        print(kind, json.dumps(out[kind]), f"max|Δ| {worst:.2e}", file=sys.stderr, flush=True)
    return out


@torch.no_grad()
def video_stages(vf: torch.nn.Module, bs: list[int], repeats: int, skip: set[str]) -> dict:
    """Synchformer over S segments and the CLIP image tower over B frames, one call each."""
    rng = np.random.default_rng(0)
    out: dict = {}
    if "sync" not in skip:
        # S segments of 16 frames every 8: 16 + 8 (S − 1) frames at 25 fps
        frames = {s: rng.integers(0, 255, (16 + 8 * (s - 1), 224, 224, 3), dtype=np.uint8) for s in bs}
        fns = {s: (lambda f=f: vf.encode_sync(f, f.shape[0] / 25.0)) for s, f in frames.items()}
        out["synchformer_segments"] = ratios(interleaved(fns, repeats))
        print("sync", json.dumps(out["synchformer_segments"]), file=sys.stderr, flush=True)
    if "clip" not in skip:
        frames = {b: rng.integers(0, 255, (b, 384, 384, 3), dtype=np.uint8) for b in bs}
        fns = {b: (lambda f=f: vf.encode_clip(f, f.shape[0] / 8.0)) for b, f in frames.items()}
        out["clip_image_frames"] = ratios(interleaved(fns, repeats))
        print("clip", json.dumps(out["clip_image_frames"]), file=sys.stderr, flush=True)
    return out


@torch.no_grad()
def text_stage(te: torch.nn.Module, bs: list[int], repeats: int) -> dict:
    prompts = ["rain falls on a tin roof", "a dog barks twice", "footsteps on gravel", "wind in the trees"]
    fns = {b: (lambda b=b: te.encode_prompts([prompts[i % 4] for i in range(b)])) for b in bs}
    out = {"clip_text_prompts": ratios(interleaved(fns, repeats))}
    print("text", json.dumps(out["clip_text_prompts"]), file=sys.stderr, flush=True)
    return out


@torch.no_grad()
def e2e_parity(net: MMAudio, cn: AudioControlNet, vf: torch.nn.Module, te: torch.nn.Module, duration: float) -> dict:
    """generate_tracks_batched vs generate_track per window: 2 NAG windows, 1 step, null video."""
    codec = MMAudioCodec(mode="16k").eval()  # its weights only shape the negatives' latents
    pipe = StepByStepV2APipeline(transformer=net, controlnet=cn, codec=codec, video_features=vf,
                                 text_encoder=te, tokenizer=None)
    sr = codec.sample_rate
    rng = np.random.default_rng(5)
    reqs = [TrackRequest(None, duration, p, (0.1 * rng.standard_normal(int(duration * sr))).astype(np.float32),
                         seed=1000 + i, alpha=ALPHA, beta=BETA, steps=1)
            for i, p in enumerate(["rain falls on a tin roof", "a dog barks twice"])]
    t0 = time.perf_counter()
    batched = generate_tracks_batched(pipe, reqs)
    t_b = time.perf_counter() - t0
    t0 = time.perf_counter()
    single = [pipe.generate_track(video=r.video, duration=r.duration, prompt=r.prompt, negative_audio=r.negative_audio,
                                  alpha=r.alpha, beta=r.beta, num_inference_steps=r.steps, seed=r.seed) for r in reqs]
    t_u = time.perf_counter() - t0
    lat = max(float((b.latent - s.latent).abs().max()) for b, s in zip(batched, single))
    wav = max(float(np.abs(b.waveform - s.waveform).max()) for b, s in zip(batched, single))
    ok = all(torch.allclose(b.latent, s.latent, atol=ATOL, rtol=RTOL) for b, s in zip(batched, single))
    distinct = float((batched[0].latent - batched[1].latent).abs().max())
    res = {"windows": 2, "duration_s": duration, "steps": 1, "latent_max_abs_diff": lat, "waveform_max_abs_diff": wav,
           "latents_allclose": ok, "windows_differ_by": distinct, "batched_s": round(t_b, 2), "unbatched_s": round(t_u, 2)}
    print("e2e", json.dumps(res), file=sys.stderr, flush=True)
    if not ok:
        raise AssertionError(f"end-to-end batched differs from unbatched: {res}")
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bs", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--video-bs", type=int, nargs="+", default=[1, 2, 4],
                    help="frames / segments per call for CLIP and Synchformer (~14 s / 7 s each here)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--video-repeats", type=int, default=2)
    ap.add_argument("--skip", nargs="*", default=[], choices=["network", "clip", "sync", "text", "e2e"])
    ap.add_argument("--e2e-duration", type=float, default=8.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    skip = set(args.skip)
    result: dict = {"preset": "small_16k", "threads": args.threads, "repeats": args.repeats,
                    "video_repeats": args.video_repeats,
                    "load_average_start": os.getloadavg()}

    def save() -> None:
        if args.json:
            args.json.write_text(json.dumps(result, indent=1) + "\n")

    net, cn = build_network()
    if "network" not in skip:
        result["network"] = network_stage(net, cn, args.bs, args.repeats)
        save()
    te = ClipTextEncoder().eval().requires_grad_(False)
    if "text" not in skip:
        result["text"] = text_stage(te, args.bs, args.repeats)
        save()
    vf = MMAudioVideoFeatures().eval().requires_grad_(False)
    result["video"] = video_stages(vf, args.video_bs, args.video_repeats, skip)
    save()
    if "e2e" not in skip:
        result["e2e_parity"] = e2e_parity(net, cn, vf, te, args.e2e_duration)
    result["load_average_end"] = os.getloadavg()
    save()
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
