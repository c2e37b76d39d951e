"""What batching B windows should buy on an H100-class GPU: FLOPs counted from the modules'
shapes, arithmetic intensity, tile occupancy and the kernel-launch floor (issue #18 §2).

Per row (one window's null, conditional or guided pass), with d = hidden, h = SwiGLU width
(⌈⅔·4d / 256⌉·256), N / Nc / Nt latent / clip / text tokens (lengths.py, 8 s) and L = N+Nc+Nt,
multiply–accumulates (FLOPs = 2 × MACs):

    audio input        N · (7·latent_dim·d + 3·7·d·h)              conv k7 + SwiGLU of k7 convs
    joint block        N · (6d² + 3d² + 3d² + 9dh)                  latent: per-token adaLN (the sync
                                                                     condition is per frame), qkv,
                                                                     conv k3 out, SwiGLU of k3 convs
                     + Nc · (3d² + 3d² + 9dh) + Nt · (3d² + d² + 3dh)   clip / text streams
                                                                     (the last joint block: qkv only)
                     + 2·L²·d                                        joint attention (QKᵀ and AV)
    fused block        N · (12d² + 9dh) + 2·N²·d                    audio only
    final layer        N · 7·d·latent_dim
    guidance branch    audio input + N·d² + M fused blocks + M·N·d² (M = ⌈depth/2⌉), on the last B rows

    NAG step = 3·B rows + branch on B rows;  CFG step = 2·B rows

Device model (assumptions, not measurements): H100 SXM, dense bf16 989 TFLOP/s, HBM 3.35 TB/s
(ridge 295 FLOP/byte), 132 SMs, 128×128 output tiles per SM. A GEMM of M×K×N (M = rows ×
tokens) keeps ⌈M/128⌉·⌈N/128⌉ tiles busy: with fewer than 132 it uses that fraction of the
device, so its time is 2MKN / (989 T · min(1, tiles/132) · 0.6) or its bytes / 3.35 TB/s if
that is longer (0.6: a good GEMM's share of peak). Eager PyTorch issues one kernel per torch
call, each costing ≥ ``--launch-us`` (5 µs: launch + tail of a tiny kernel; the host's own
dispatch, ~5–10 µs per op, overlaps only while the GPU is busier), counted here by running one
step under a ``TorchFunctionMode`` on the meta device (so the count is the code's own). Then

    t_step(B) = max(kernels · launch,  Σ_GEMM t_GEMM(B) + attention at 0.6 · peak)
    predicted throughput gain(B) = B · t_step(1) / t_step(B)

    .venv/bin/python benchmarks/gpu_cost_model.py [--bs 1 2 4 8 16 32] [--launch-us 5]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.generation.controlnet import AudioControlNet
from models.generation.mmaudio import PRESETS, MMAudio, PreprocessedConditions
from models.mmaudio_family.codec import MMAudioCodec
from models.mmaudio_family.lengths import sequence_lengths
from models.mmaudio_family.text_encoder import ClipTextEncoder
from models.mmaudio_family.video_features import MMAudioVideoFeatures

PEAK_BF16 = 989e12
HBM_BPS = 3.35e12
SMS = 132
TILE = 128
GEMM_EFF = 0.6


def swiglu_width(d: int) -> int:
    h = int(2 * 4 * d / 3)
    return 256 * ((h + 255) // 256)


def gemms(preset: str, rows: int, branch_rows: int, duration: float = 8.0) -> list[tuple[int, int, int, int]]:
    """Every matmul of one step as (M, K, N, count) — convolutions as K = kernel · C_in —
    plus attention as ('attn' rows are folded in as M = rows · heads · queries, K = head dim,
    N = keys, count 2 for QKᵀ and AV)."""
    c = PRESETS[preset]
    d, ld, heads = c["hidden_dim"], c["latent_dim"], c["num_heads"]
    h = swiglu_width(d)
    lens = sequence_lengths(duration, "16k" if preset.endswith("16k") else "44k")
    n, nc, nt = lens.latent_seq_len, lens.clip_seq_len, c["text_seq_len"]
    ll = n + nc + nt
    hd = d // heads
    n_joint, n_fused = c["depth"] - c["fused_depth"], c["fused_depth"]
    r, rb = rows, branch_rows
    out: list[tuple[int, int, int, int]] = []

    def audio_block(m_rows: int, count: int) -> None:
        m = m_rows * n
        out.extend([(m, d, 6 * d, count), (m, d, 3 * d, count), (m, 3 * d, d, count),
                    (m, 3 * d, h, 2 * count), (m, 3 * h, d, count),
                    (m_rows * heads * n, hd, n, 2 * count)])

    # audio input projection (per step: x_t changes)
    out.extend([(r * n, 7 * ld, d, 1), (r * n, 7 * d, h, 2), (r * n, 7 * h, d, 1)])
    # joint blocks: latent stream as an audio block but attending over L keys
    for i in range(n_joint):
        pre_only = i == n_joint - 1
        m = r * n
        out.extend([(m, d, 6 * d, 1), (m, d, 3 * d, 1), (m, 3 * d, d, 1), (m, 3 * d, h, 2), (m, 3 * h, d, 1)])
        out.append((r * nc, d, 3 * d, 1))
        out.append((r * nt, d, 3 * d, 1))
        if not pre_only:
            out.extend([(r * nc, 3 * d, d, 1), (r * nc, 3 * d, h, 2), (r * nc, 3 * h, d, 1),
                        (r * nt, d, d, 1), (r * nt, d, h, 2), (r * nt, h, d, 1)])
        out.append((r * heads * ll, hd, ll, 2))
    audio_block(r, n_fused)
    out.append((r * n, 7 * d, ld, 1))
    if rb:
        m_branch = math.ceil(c["depth"] / 2)
        out.extend([(rb * n, 7 * ld, d, 1), (rb * n, 7 * d, h, 2), (rb * n, 7 * h, d, 1), (rb * n, d, d, 1)])
        audio_block(rb, m_branch)
        out.append((rb * n, d, d, m_branch))
    return out


def step_flops(preset: str, b: int, nag: bool) -> float:
    return sum(2.0 * m * k * nn * cnt for m, k, nn, cnt in gemms(preset, (3 if nag else 2) * b, b if nag else 0))


def step_time(preset: str, b: int, nag: bool, kernels: int, launch_s: float) -> dict:
    """Σ over the step's kernels of max(launch, the kernel's own time): GEMMs at their occupancy
    or their bytes, the other kernels (norms, adaLN modulation, gates, RoPE, SiLU, casts) each
    reading two and writing one activation of rows × latent tokens × d in bf16."""
    c = PRESETS[preset]
    n = sequence_lengths(8.0, "16k" if preset.endswith("16k") else "44k").latent_seq_len
    gemm_s, gemm_kernels = 0.0, 0
    for m, k, nn, cnt in gemms(preset, (3 if nag else 2) * b, b if nag else 0):
        tiles = math.ceil(m / TILE) * math.ceil(nn / TILE)
        occ = min(1.0, tiles / SMS)
        t_flop = 2.0 * m * k * nn / (PEAK_BF16 * GEMM_EFF * occ)
        t_mem = 2.0 * (m * k + k * nn + m * nn) / HBM_BPS
        gemm_s += cnt * max(launch_s, t_flop, t_mem)
        gemm_kernels += cnt
    rows = (3 if nag else 2) * b + (b if nag else 0)
    other = max(0, kernels - gemm_kernels)
    t_elem = 3 * 2.0 * rows * n * c["hidden_dim"] / HBM_BPS
    other_s = other * max(launch_s, t_elem)
    return {"gemm_s": gemm_s, "elementwise_s": other_s, "launch_floor_s": kernels * launch_s,
            "step_s": gemm_s + other_s}


def intensity(m: int, k: int, n: int) -> float:
    return 2.0 * m * k * n / (2.0 * (m * k + k * n + m * n))


# Torch calls that launch no kernel (views, attribute reads, same-dtype casts in one dtype).
NO_KERNEL = {"__get__", "__getitem__", "transpose", "chunk", "view", "permute", "flatten", "dim", "reshape",
             "to", "size", "expand", "unsqueeze", "squeeze", "split", "unbind", "t"}


class _Count(TorchFunctionMode):
    """Counts the torch calls that launch a kernel in eager mode (views and reads left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        if getattr(func, "__name__", "") not in NO_KERNEL:
            self.calls += 1
        return func(*args, **(kwargs or {}))


@torch.no_grad()
def meta_step_counts(preset: str, b: int = 1) -> dict:
    """Kernel count and FlopCounterMode FLOPs of one NAG and one CFG step, built on the meta device."""
    with torch.device("meta"):
        net = MMAudio.from_preset(preset)
        cn = AudioControlNet.from_transformer(net, init_from_backbone=False)
        c = net.config
        lens = sequence_lengths(8.0, "16k" if preset.endswith("16k") else "44k")
        n, nc, ns = lens.latent_seq_len, lens.clip_seq_len, lens.sync_seq_len
        cond = net.preprocess_conditions(torch.empty(b, nc, c.clip_dim), torch.empty(b, ns, c.sync_dim),
                                         torch.empty(b, c.text_seq_len, c.text_dim), n)
        c3, c2 = PreprocessedConditions.cat([cond] * 3), PreprocessedConditions.cat([cond] * 2)
        x3, x2, neg = torch.empty(3 * b, n, c.latent_dim), torch.empty(2 * b, n, c.latent_dim), torch.empty(b, n, c.latent_dim)
        t3, t2 = torch.empty(3 * b), torch.empty(2 * b)
        out = {}
        for name, fn in (("nag", lambda: cn.predict_flow(net, x3, t3, c3, neg)), ("cfg", lambda: net.predict_flow(x2, t2, c2))):
            with _Count() as counter:
                fn()
            with FlopCounterMode(display=False) as fc:
                fn()
            out[name] = {"kernels": counter.calls, "flops_counter": fc.get_total_flops()}
    return out


@torch.no_grad()
def encoder_flops(mode: str) -> dict[str, float]:
    """FLOPs per 8-s window of the conditioning encoders and the codec (FlopCounterMode, meta
    device): CLIP image tower on 64 frames at 384², Synchformer on 24 segments, the CLIP text
    tower on one prompt, the VAE encode of a negative, the VAE decode + vocoder of a track."""
    lens = sequence_lengths(8.0, mode)
    with torch.device("meta"):
        vf, te, codec = MMAudioVideoFeatures(), ClipTextEncoder(), MMAudioCodec(mode=mode)
        n_seg = lens.sync_seq_len // 8
        work = {"clip_image": lambda: vf.clip_visual(torch.empty(lens.clip_seq_len, 3, 384, 384)),
                "synchformer": lambda: vf.synchformer.vfeat_extractor(torch.empty(n_seg, 3, 16, 224, 224)),
                "text": lambda: te.hidden(torch.zeros(1, 77, dtype=torch.long)),
                "vae_encode": lambda: codec.encode(torch.empty(1, lens.num_audio_frames)),
                "decode": lambda: codec.decode(torch.empty(1, lens.latent_seq_len, codec.latent_dim))}
        out = {}
        for name, fn in work.items():
            with FlopCounterMode(display=False) as fc:
                fn()
            out[name] = float(fc.get_total_flops())
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--presets", nargs="+", default=["small_16k", "small_44k", "medium_44k", "large_44k"])
    ap.add_argument("--bs", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    ap.add_argument("--launch-us", type=float, default=5.0)
    args = ap.parse_args()
    result = {}
    for preset in args.presets:
        counts = meta_step_counts(preset)
        c = PRESETS[preset]
        lens = sequence_lengths(8.0, "16k" if preset.endswith("16k") else "44k")
        d, h = c["hidden_dim"], swiglu_width(c["hidden_dim"])
        row = {"latent_tokens": lens.latent_seq_len, "joint_tokens": lens.latent_seq_len + lens.clip_seq_len + c["text_seq_len"],
               "analytic_gflops_nag_step_B1": step_flops(preset, 1, True) / 1e9,
               "counter_gflops_nag_step_B1": counts["nag"]["flops_counter"] / 1e9,
               "analytic_gflops_cfg_step_B1": step_flops(preset, 1, False) / 1e9,
               "counter_gflops_cfg_step_B1": counts["cfg"]["flops_counter"] / 1e9,
               "kernels_nag_step": counts["nag"]["kernels"], "kernels_cfg_step": counts["cfg"]["kernels"],
               "ffn_gemm_B1": {"M": 3 * lens.latent_seq_len, "K": 3 * d, "N": h,
                               "flop_per_byte": round(intensity(3 * lens.latent_seq_len, 3 * d, h), 1),
                               "tiles": math.ceil(3 * lens.latent_seq_len / TILE) * math.ceil(h / TILE)}}
        for kind, nag in (("nag", True), ("cfg", False)):
            t1 = step_time(preset, 1, nag, counts[kind]["kernels"], args.launch_us * 1e-6)["step_s"]
            rows = []
            for b in args.bs:
                st = step_time(preset, b, nag, counts[kind]["kernels"], args.launch_us * 1e-6)
                rows.append({"B": b, "step_ms": round(st["step_s"] * 1e3, 3), "gemm_ms": round(st["gemm_s"] * 1e3, 3),
                             "elementwise_ms": round(st["elementwise_s"] * 1e3, 3),
                             "launch_floor_ms": round(st["launch_floor_s"] * 1e3, 3),
                             "gain_vs_B1": round(b * t1 / st["step_s"], 2)})
            row[f"{kind}_prediction"] = rows
        result[preset] = row
    print(json.dumps(result, indent=1, default=lambda v: round(v, 3)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
