"""Where the time of one 8-s window goes at real small_16k size (random weights), on this CPU,
one thread; and what each preset weighs (parameters, GPU memory), from the state-dict manifests.

Stages, each timed on a few units and extrapolated to the window (MMAudio's counts for 8 s):

    CLIP image tower at 384²      64 frames (8 fps)            timed on --clip-frames frames
    Synchformer                   24 segments of 16 frames      timed on --sync-segments segments
    VAE encode of the negatives   8 s of 16 kHz audio           whole (one pass)
    network × steps               25 Euler steps: CFG = one batch-2 forward per step,
                                  NAG = one batch-3 forward + the branch on one row
                                  timed on --steps-timed steps, × 25
    vocoder (BigVGAN 16k)         8 s                           whole

GPU memory per preset: weights of every component in bf16 (network, branch, CLIP, Synchformer)
and fp32 (codec, as the pipeline places them), from the manifests' shapes; activations are
not included (at batch 3 and 250 latent tokens they are small next to CLIP's weights).

    .venv/bin/python benchmarks/bench_real_size.py [--clip-frames 2] [--sync-segments 1] [--steps-timed 2]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
NET_MANIFEST = Path("/work/shared/fixtures/mmaudio/mmaudio_state_dict_manifest.json")
if not NET_MANIFEST.is_file():
    NET_MANIFEST = REPO / "tests" / "fixtures" / "mmaudio" / "mmaudio_state_dict_manifest.json"
FEAT_MANIFEST = REPO / "tests" / "fixtures" / "mmaudio-family" / "mmaudio_features_state_dict_manifest.json"
STEPS = 25
WINDOW_S = 8.0


def _timed(fn, repeat: int = 1) -> float:
    fn()  # warm-up (allocations, lazy buffers)
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat


def _params(keys: dict, skip: tuple[str, ...] = ()) -> int:
    return sum(math.prod(s) for k, s in keys.items() if not any(x in k for x in skip))


def memory_table() -> list[dict]:
    from models.generation.controlnet import AudioControlNet
    from models.generation.mmaudio import MMAudio, PRESETS

    net = json.loads(NET_MANIFEST.read_text())
    feat = json.loads(FEAT_MANIFEST.read_text())
    fkey = {k.split(" ")[0]: v for k, v in feat.items() if isinstance(v, dict) and "keys" in v}
    legacy = ("weight_g", "weight_v")  # listed twice in the manifest: count one naming
    clip = _params(fkey["clip"]["keys"])
    sync = _params({k: v for k, v in fkey["synchformer"]["keys"].items() if k.startswith("vfeat_extractor")})
    rows = []
    for preset, entry in net.items():
        n_net = int(entry["num_params"])
        with torch.device("meta"):
            branch = sum(p.numel() for p in AudioControlNet.from_transformer(
                MMAudio(**PRESETS[preset]), init_from_backbone=False).parameters())
        vae = _params(fkey["vae_16k" if preset.endswith("16k") else "vae_44k"]["keys"])
        voc_keys = fkey["bigvgan_16k" if preset.endswith("16k") else "bigvgan_v2_44k"]["keys"]
        voc = _params({k: v for k, v in voc_keys.items() if not k.endswith(legacy)})
        bf16 = 2 * (n_net + branch + clip + sync)
        fp32 = 4 * (vae + voc)
        rows.append({"preset": preset, "network_M": n_net / 1e6, "branch_M": branch / 1e6, "clip_M": clip / 1e6,
                     "synchformer_M": sync / 1e6, "vae_M": vae / 1e6, "vocoder_M": voc / 1e6,
                     "total_M": (n_net + branch + clip + sync + vae + voc) / 1e6,
                     "gpu_weights_GiB": (bf16 + fp32) / 2**30})
    return rows


def window_timings(clip_frames: int, sync_segments: int, steps_timed: int) -> dict[str, float]:
    from models.generation.controlnet import AudioControlNet
    from models.generation.mmaudio import MMAudio, PRESETS
    from models.mmaudio_family.codec import MMAudioCodec
    from models.mmaudio_family.lengths import clip_seq_len, sync_seq_len
    from models.mmaudio_family.video_features import MMAudioVideoFeatures

    torch.manual_seed(0)
    out: dict[str, float] = {}
    with torch.inference_mode():
        vf = MMAudioVideoFeatures().eval()
        n_clip, n_sync_tokens = clip_seq_len(WINDOW_S), sync_seq_len(WINDOW_S)
        frames = torch.randint(0, 255, (clip_frames, 384, 384, 3), dtype=torch.uint8)
        t = _timed(lambda: vf.encode_clip(frames, clip_frames / 8.0))
        out["clip_per_frame_s"] = t / clip_frames
        out["clip_window_s"] = t / clip_frames * n_clip
        n_seg = n_sync_tokens // 8
        sync_frames = torch.randint(0, 255, (16 + 8 * (sync_segments - 1), 224, 224, 3), dtype=torch.uint8)
        t = _timed(lambda: vf.encode_sync(sync_frames, (16 + 8 * (sync_segments - 1)) / 25.0))
        out["sync_per_segment_s"] = t / sync_segments
        out["sync_window_s"] = t / sync_segments * n_seg
        del vf

        codec = MMAudioCodec(mode="16k").eval()
        wave = 0.1 * torch.randn(1, int(16000 * WINDOW_S))
        out["vae_encode_window_s"] = _timed(lambda: codec.encode(wave))
        latent = codec.encode(wave)
        out["vocoder_window_s"] = _timed(lambda: codec.decode(latent))
        out["latent_len"] = float(latent.shape[1])
        del codec

        net = MMAudio(**PRESETS["small_16k"]).eval()
        branch = AudioControlNet.from_transformer(net, init_from_backbone=False).eval()
        n_lat = int(latent.shape[1])

        def conds(b: int):
            return net.preprocess_conditions(torch.randn(b, n_clip, 1024), torch.randn(b, n_sync_tokens, 768),
                                             torch.randn(b, 77, 1024))

        c2, c3 = conds(2), conds(3)
        x2, x3, neg = torch.randn(2, n_lat, 20), torch.randn(3, n_lat, 20), torch.randn(1, n_lat, 20)
        tt2, tt3 = torch.full((2,), 0.5), torch.full((3,), 0.5)
        out["conditions_s"] = _timed(lambda: conds(3))
        cfg = _timed(lambda: net.predict_flow(x2, tt2, c2), steps_timed)
        nag = _timed(lambda: branch.predict_flow(net, x3, tt3, c3, neg), steps_timed)
        out["cfg_step_s"], out["nag_step_s"] = cfg, nag
        out["cfg_window_s"], out["nag_window_s"] = cfg * STEPS, nag * STEPS
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clip-frames", type=int, default=2)
    ap.add_argument("--sync-segments", type=int, default=1)
    ap.add_argument("--steps-timed", type=int, default=2)
    ap.add_argument("--skip-timings", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    for r in memory_table():
        print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()}))
    if not args.skip_timings:
        res = window_timings(args.clip_frames, args.sync_segments, args.steps_timed)
        print(json.dumps({k: round(v, 3) for k, v in res.items()}, indent=1))


if __name__ == "__main__":
    main()
