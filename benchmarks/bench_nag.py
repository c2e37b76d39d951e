"""NAG cost on the CPU: measured vs FLOP-predicted, and the batching/caching choices (on demand).

    .venv/bin/python benchmarks/bench_nag.py [--sizes tiny small_16k] [--threads 1] [--repeats 5]

For each network size (random weights; the cost does not depend on their values), one 8 s
window, batch B = 1:

* FLOPs of one base forward F_u and of the branch F_ψ (torch FlopCounterMode); predicted
  NAG/CFG step ratio = (3 F_u + F_ψ) / (2 F_u).
* step time: CFG (one 2B forward) vs NAG (one 3B forward, branch on the last B rows), the
  measured ratio next to the predicted one.
* NAG step variants: one 3B forward vs a 2B base forward + a separate B ψ forward vs three
  separate B forwards; branch on the last slice vs on all 3B rows.
* conditioning cached once per track vs recomputed every step (25 steps).
* NAG/CFG ratio for a whole 25-step track (conditioning + ODE, decode excluded).
Ratios are measured in the same run, interleaved, median of ``repeats``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.generation.controlnet import AudioControlNet  # noqa: E402
from models.generation.mmaudio import MMAudio, PreprocessedConditions  # noqa: E402
from models.generation.nag import nag_velocity  # noqa: E402
from models.generation.sampling import euler_sample  # noqa: E402


@torch.no_grad()
def randomize(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    for p in module.parameters():
        fan = max(1, p[0].numel()) if p.dim() >= 2 else 1
        p.copy_(torch.randn(p.shape, generator=g) / fan**0.5 * (1.0 if p.dim() >= 2 else 0.1))
    return module


def timeit(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up (allocations, RoPE cache)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def flops(fn: Callable[[], object]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


@torch.no_grad()
def bench(size: str, repeats: int, steps: int) -> dict:
    torch.manual_seed(0)
    net = randomize(MMAudio.from_preset(size), 0).eval().requires_grad_(False)
    cn = randomize(AudioControlNet.from_transformer(net), 1).eval().requires_grad_(False)
    c = net.config
    g = torch.Generator().manual_seed(0)
    b, n = 1, c.latent_seq_len
    clip = torch.randn(b, c.clip_seq_len, c.clip_dim, generator=g)
    sync = torch.randn(b, c.sync_seq_len, c.sync_dim, generator=g)
    text = torch.randn(b, c.text_seq_len, c.text_dim, generator=g)
    x = torch.randn(b, n, c.latent_dim, generator=g)
    neg = torch.randn(b, n, c.latent_dim, generator=g)
    t = torch.full((b,), 0.5)

    def conditions():
        cond = net.preprocess_conditions(clip, sync, text, n)
        null = net.get_empty_conditions(b, latent_len=n)
        psi = net.preprocess_conditions(clip, sync, net.empty_string_feat[None].expand(b, -1, -1), n)
        return null, cond, psi

    null, cond, psi = conditions()
    c2 = PreprocessedConditions.cat([null, cond])
    c3 = PreprocessedConditions.cat([null, cond, psi])
    x2, x3, t2, t3 = torch.cat([x] * 2), torch.cat([x] * 3), torch.cat([t] * 2), torch.cat([t] * 3)
    neg3 = torch.cat([neg] * 3)

    def cfg_step():
        u0, u1 = net.predict_flow(x2, t2, c2).chunk(2)
        return nag_velocity(u0, u1, None, 4.5, 0.0)

    def nag_step():  # the pipeline's choice: one 3B forward, branch on the last B rows
        u0, u1, un = cn.predict_flow(net, x3, t3, c3, neg).chunk(3)
        return nag_velocity(u0, u1, un, 4.5, 1.5)

    def nag_step_branch_all_rows():  # branch on all 3B rows (residuals computed and discarded for 2B)
        xe, gc, ec = net.embed(x3, t3, c3)
        rot = net.rotations(n, c.clip_seq_len, x.device)[0]
        res = cn.residuals(xe, ec, neg3, rot)
        res = [r[2 * b:] for r in res]
        u0, u1, un = net.run_blocks(xe, gc, ec, c3, res).chunk(3)
        return nag_velocity(u0, u1, un, 4.5, 1.5)

    def nag_step_2plus1():
        u0, u1 = net.predict_flow(x2, t2, c2).chunk(2)
        return nag_velocity(u0, u1, cn.predict_flow(net, x, t, psi, neg), 4.5, 1.5)

    def nag_step_separate():
        return nag_velocity(net.predict_flow(x, t, null), net.predict_flow(x, t, cond),
                            cn.predict_flow(net, x, t, psi, neg), 4.5, 1.5)

    f_u = flops(lambda: net.predict_flow(x, t, cond))
    f_psi = flops(lambda: cn.predict_flow(net, x, t, psi, neg)) - f_u
    f_cond = flops(conditions)
    predicted = (3 * f_u + f_psi) / (2 * f_u)

    # Interleave the variants (round-robin) so load changes from other jobs hit them alike.
    variants = {"cfg": cfg_step, "nag_3B": nag_step, "nag_3B_branch_all_rows": nag_step_branch_all_rows,
                "nag_2B+B": nag_step_2plus1, "nag_separate_3x": nag_step_separate}
    for fn in variants.values():
        fn()
    samples = {k: [] for k in variants}
    for _ in range(repeats):
        for k, fn in variants.items():
            t0 = time.perf_counter()
            fn()
            samples[k].append(time.perf_counter() - t0)
    step = {k: statistics.median(v) for k, v in samples.items()}

    def track(nag: bool, cached: bool):
        def run():
            cc = conditions() if cached else None

            def fn(tt, xx):
                nl, cd, ps = cc if cached else conditions()
                if nag:
                    u0, u1, un = cn.predict_flow(net, torch.cat([xx] * 3), tt.expand(3 * b),
                                                 PreprocessedConditions.cat([nl, cd, ps]), neg).chunk(3)
                    return nag_velocity(u0, u1, un, 4.5, 1.5)
                u0, u1 = net.predict_flow(torch.cat([xx] * 2), tt.expand(2 * b), PreprocessedConditions.cat([nl, cd])).chunk(2)
                return nag_velocity(u0, u1, None, 4.5, 0.0)

            return euler_sample(fn, torch.randn(b, n, c.latent_dim, generator=torch.Generator().manual_seed(0)), steps)
        return run

    track_reps = max(1, repeats // 2)
    tr = {}
    for name, nag, cached in (("cfg_track", False, True), ("nag_track", True, True), ("nag_track_uncached", True, False)):
        tr[name] = timeit(track(nag, cached), track_reps)

    return {
        "size": size,
        "params_base_M": round(sum(p.numel() for p in net.parameters()) / 1e6, 2),
        "params_branch_M": round(sum(p.numel() for p in cn.parameters()) / 1e6, 2),
        "gflops_base_forward": round(f_u / 1e9, 3),
        "gflops_branch": round(f_psi / 1e9, 3),
        "gflops_conditioning_3x": round(f_cond / 1e9, 3),
        "step_ms": {k: round(v * 1e3, 2) for k, v in step.items()},
        "nag_over_cfg_step_predicted": round(predicted, 3),
        "nag_over_cfg_step_measured": round(step["nag_3B"] / step["cfg"], 3),
        "separate_over_batched": round(step["nag_separate_3x"] / step["nag_3B"], 3),
        "2B+B_over_batched": round(step["nag_2B+B"] / step["nag_3B"], 3),
        "branch_all_rows_over_last_slice": round(step["nag_3B_branch_all_rows"] / step["nag_3B"], 3),
        "track_s": {k: round(v, 3) for k, v in tr.items()},
        "nag_over_cfg_track": round(tr["nag_track"] / tr["cfg_track"], 3),
        "uncached_over_cached_conditioning": round(tr["nag_track_uncached"] / tr["nag_track"], 3),
        "steps": steps,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["tiny", "small_16k"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=25)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = [bench(s, args.repeats, args.steps) for s in args.sizes]
    print(json.dumps({"threads": args.threads, "torch": torch.__version__, "results": results}, indent=1))


if __name__ == "__main__":
    main()
