"""GPU-seconds per footage-hour, agents per nightly volume, bytes per footage-hour (issue #18 §6):
the arithmetic behind docs/capacity.md, so every number there can be recomputed.

One 8-s window with K tracks (silent footage: track 1 is CFG, tracks 2..K are NAG; footage with
its own soundtrack makes all K NAG) on one H100, bf16, B windows per batched ODE:

    window(K) = features + track_cfg + (K − 1) · track_nag + agent overhead
    features  = CLIP image (64 frames) + Synchformer (24 segments)           once per window
    track     = text + ODE (25 steps) / gain(B) + decode (VAE + vocoder)     (+ VAE encode: NAG)

Two estimates, both printed:
  floor     every part from benchmarks/gpu_cost_model.py (FLOPs from the modules' shapes at
            0.6 of bf16 peak for the encoders, 0.3 for the codec's convolutions; the ODE step
            from the kernel-level model there)
  anchored  the floor scaled so MMAudio's own small_16k clip (features + one CFG track, 25
            steps) takes the published 1.23 s (arXiv 2412.15322: "1.23s to generate an 8s
            clip"), i.e. whatever the published figure contains beyond our floor (video decoding,
            fp32 parts, host overhead) is assumed to scale with the work — the conservative
            planning number until a GPU measurement replaces it
Agent overhead per window: 0.25 s (the warm agent's measured 0.20–0.31 s median, docs/performance.md).
Footage-hour = 450 windows of 8 s (shots split windows: at a mean window of 5 s, ×1.6).

    .venv/bin/python benchmarks/capacity_plan.py [--batch 1] [--overhead 0.25]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_cost_model import (
    GEMM_EFF,
    PEAK_BF16,
    encoder_flops,
    meta_step_counts,
    step_time,
)

PUBLISHED_SMALL_16K_CLIP_S = 1.23
STEPS = 25
CODEC_EFF = 0.3
WINDOWS_PER_HOUR = 3600 / 8
NIGHT_S = 8 * 3600
PRESETS = ("small_16k", "small_44k", "medium_44k", "large_44k", "large_44k_v2")
LAUNCH_S = 5e-6


def parts(preset: str, batch: int, enc: dict[str, dict[str, float]]) -> dict[str, float]:
    mode = "16k" if preset.endswith("16k") else "44k"
    e = enc[mode]
    counts = meta_step_counts(preset)
    ode = {kind: STEPS * step_time(preset, batch, kind == "nag", counts[kind]["kernels"], LAUNCH_S)["step_s"] / batch
           for kind in ("nag", "cfg")}
    feats = (e["clip_image"] + e["synchformer"]) / (PEAK_BF16 * GEMM_EFF)
    text = max(LAUNCH_S * 24 * 12, e["text"] / (PEAK_BF16 * GEMM_EFF))  # 24 blocks × ~12 kernels
    decode = e["decode"] / (PEAK_BF16 * CODEC_EFF)
    encode = e["vae_encode"] / (PEAK_BF16 * CODEC_EFF)
    return {"features": feats, "track_cfg": text + ode["cfg"] + decode,
            "track_nag": text + ode["nag"] + decode + encode, "ode_cfg": ode["cfg"], "ode_nag": ode["nag"]}


def window_s(p: dict[str, float], k: int, overhead: float, scale: float) -> float:
    return scale * (p["features"] + p["track_cfg"] + (k - 1) * p["track_nag"]) + overhead


def storage(k: int, sr: int, flac_ratio: float = 0.6) -> dict[str, float]:
    """Bytes per footage-hour: window stems (24-bit mono FLAC at the model rate), the mix stage's
    48 kHz stems + mix, and the muxed output's audio (mix + K stems at 48 kHz; the picture is
    copied, its size is the source's). ``flac_ratio`` 0.57 was measured on the demo's stems."""
    per_hour = lambda rate: 3600 * rate * 3 * flac_ratio
    return {"window_stems_GB": k * per_hour(sr) / 1e9, "mix_stage_GB": (k + 1) * per_hour(48000) / 1e9,
            "output_audio_GB": (k + 1) * per_hour(48000) / 1e9}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--overhead", type=float, default=0.25)
    ap.add_argument("--utilisation", type=float, default=0.8, help="share of the night an agent generates")
    args = ap.parse_args()
    enc = {m: encoder_flops(m) for m in ("16k", "44k")}
    base = parts("small_16k", 1, enc)
    floor_clip = base["features"] + base["track_cfg"]
    scale = PUBLISHED_SMALL_16K_CLIP_S / floor_clip
    out: dict = {"encoder_tflops": {m: {k: round(v / 1e12, 3) for k, v in e.items()} for m, e in enc.items()},
                 "small_16k_floor_clip_s": round(floor_clip, 3), "anchor_scale": round(scale, 2), "presets": {}}
    for preset in PRESETS:
        for b in args.batch:
            p = parts(preset, b, enc)
            rows = []
            for k in (1, 2, 3, 4, 5):
                for name, sc in (("floor", 1.0), ("anchored", scale)):
                    w = window_s(p, k, args.overhead, sc)
                    gpu_h = w * WINDOWS_PER_HOUR / 3600
                    rows.append({"K": k, "estimate": name, "window_s": round(w, 3),
                                 "gpu_s_per_footage_h": round(w * WINDOWS_PER_HOUR),
                                 "agents_10h": math.ceil(10 * gpu_h * 3600 / (NIGHT_S * args.utilisation)),
                                 "agents_100h": math.ceil(100 * gpu_h * 3600 / (NIGHT_S * args.utilisation)),
                                 "agents_1000h": math.ceil(1000 * gpu_h * 3600 / (NIGHT_S * args.utilisation))})
            out["presets"][f"{preset} B={b}"] = {"parts_s": {k: round(v, 4) for k, v in p.items()}, "rows": rows}
    out["storage_per_footage_hour"] = {f"K={k} {sr // 1000}k": {n: round(v, 2) for n, v in storage(k, sr).items()}
                                       for k in (1, 4, 5) for sr in (16000, 44100)}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
