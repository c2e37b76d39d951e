"""Quick quality gates of a bundle on held-out FoleyWorld scenes (issue 9 §3), judged by the
bundle's evaluator. `python benchmarks/bundle_gates.py BUNDLE [N]` prints JSON.

1. single prompt: the prompted class is the evaluator's top-1 (chance 1/11); beside it, the
   same evaluator on the scenes' ground-truth source and on its round trip through the bundle's
   codec (encode → decode): the ceiling a generator with perfect latents would reach;
2. two sources, step by step: leakage = evaluator score of track 1's class in track 2,
   NAG (α 4.5, the bundle's β or --beta, against track 1) vs independent CFG; 95 % bootstrap intervals of each
   mean, and of the paired per-scene reduction (independent − NAG, same scene and seed): the
   gate holds when that interval lies above zero;
3. synchronisation (issue 19 §1): one-source held-out scenes, the six event-driven classes in
   turn; onsets of the generated track (the source's caption with the scene's video), of the
   real source audio (ceiling) and of the same prompt and seed with another scene's video
   (floor) against the visual event times: onset F1 within ±80 ms, median |offset| of matched
   onsets, DeSync (|lag| of the onset envelope's cross-correlation with the event train), per
   class and overall with 95 % scene-bootstrap intervals (``models.evaluation.sync``).

`python benchmarks/bundle_gates.py BUNDLE [N] [--sync M] [--only sync|single|leakage] [--beta B] [--figure PNG]`: M sync
scenes (default 36, 0 = skip); --only sync skips sections 1–2, --only single runs section 1 alone
(a base without its branch); --figure writes onset rasters.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from models.training import foleyworld as fw
from models.generation.bundle import load_bundle
from models.evaluation.evaluator import load_evaluator
from models.evaluation.sync import markdown_table, summarise_sync
from models.evaluation.sync_plot import plot_onset_rasters
from models.evaluation.sync_run import SyncItem, measure_sync, single_source_items


def boot(x: np.ndarray, seed: int = 0, n: int = 2000) -> list[float]:
    rng = np.random.default_rng(seed)
    means = [x[rng.integers(0, len(x), len(x))].mean() for _ in range(n)]
    return [float(x.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def sync_section(pipe, m: int, figure: str | None = None) -> dict:
    """Section 3 on ``m`` one-source held-out scenes (seeds test + 8000 …, default settings)."""
    items = single_source_items(range(fw.SPLITS["test"].start + 8000, fw.SPLITS["test"].start + 8000 + m))

    def generate(item: SyncItem, video_of: SyncItem) -> np.ndarray:
        return pipe.generate_track(video_of.video, 8.0, item.caption, seed=item.seed).waveform

    rows = measure_sync(items, generate, int(pipe.codec.sample_rate))
    if figure:
        plot_onset_rasters(rows, figure)
    summary = summarise_sync(rows)
    return {"scenes": m, "summary": summary, "table": markdown_table(summary), "rows": rows}


def leakage_section(pipe, ev, base: int, n: int, beta: float) -> dict:
    """Section 2: track 2 of two-source scenes, NAG (against track 1) vs independent CFG."""
    leak = {"nag": [], "independent": []}
    fid = {"nag": [], "independent": []}
    for i in range(n):
        sc = fw.make_scene(base + 1000 + i, 8.0, 2, 64)
        a, b = sc.sources
        video = fw.model_video(sc.frames)
        t1 = pipe.generate_track(video, 8.0, a.caption, seed=i)
        for mode in ("nag", "independent"):
            t2 = pipe.generate_track(video, 8.0, b.caption, negative_audio=t1.waveform if mode == "nag" else None,
                                     mode=mode, seed=1000 + i, beta=beta)
            s = ev.class_scores(t2.waveform, 16000)
            leak[mode].append(s[a.cls])
            fid[mode].append(s[b.cls])
    return {"leakage": {m: boot(np.array(v)) for m, v in leak.items()},
            "leakage_reduction_paired": boot(np.array(leak["independent"]) - np.array(leak["nag"])),
            "fidelity": {m: boot(np.array(v)) for m, v in fid.items()}}


def main(bundle: str, n: int = 22, sync: int = 36, only: str | None = None, figure: str | None = None,
         beta: float | None = None) -> dict:
    torch.set_num_threads(1)
    pipe = load_bundle(bundle)
    pipe.set_progress_bar_config(disable=True)
    beta = pipe.default_beta if beta is None else beta  # the bundle's declared β, else 1.5
    if only == "sync":
        return {"sync": sync_section(pipe, sync, figure)}
    ev = load_evaluator(f"{bundle}/evaluator")
    base = fw.SPLITS["test"].start + 5000
    if only == "leakage":
        return {"n": n, "beta": beta, **leakage_section(pipe, ev, base, n, beta)}
    hits, peaks, nan = [], [], 0
    truth, round_trip = [], []
    classes_hit: dict[str, list[float]] = {}
    for i in range(n):
        cls = fw.CLASSES[i % len(fw.CLASSES)]
        sc = fw.make_scene(base + i, 8.0, 1, 64, classes=[cls])
        wave = np.asarray(sc.sources[0].audio, dtype=np.float32)
        decoded = pipe.decode_latent(pipe.encode_audio(wave, 8.0), len(wave))
        for judged, w in ((truth, wave), (round_trip, decoded)):
            s = ev.class_scores(w, 16000)
            judged.append(float(max(s, key=s.get) == cls))
        out = pipe.generate_track(fw.model_video(sc.frames), 8.0,
                                  sc.sources[0].caption, seed=i)
        nan += int(not np.isfinite(out.waveform).all())
        peaks.append(float(np.abs(out.waveform).max()))
        s = ev.class_scores(out.waveform, 16000)
        hits.append(float(max(s, key=s.get) == cls))
        classes_hit.setdefault(cls, []).append(hits[-1])
    single = {"single_prompt_top1": boot(np.array(hits)), "n": n, "nan_tracks": nan,
              "single_prompt_top1_per_class": {c: float(np.mean(v)) for c, v in sorted(classes_hit.items())},
              "ground_truth_top1": boot(np.array(truth)), "codec_round_trip_top1": boot(np.array(round_trip)),
              "max_peak": max(peaks)}
    if only == "single":
        return single
    out = {**single, "beta": beta, **leakage_section(pipe, ev, base, n, beta)}
    if sync:
        out["sync"] = sync_section(pipe, sync, figure)
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("bundle")
    ap.add_argument("n", nargs="?", type=int, default=22)
    ap.add_argument("--sync", type=int, default=36, help="one-source scenes for the sync section (0 = skip)")
    ap.add_argument("--only", choices=["sync", "single", "leakage"], help="run only this section")
    ap.add_argument("--beta", type=float, default=None,
                    help="NAG β of the leakage section (default: the bundle's declared β, else 1.5)")
    ap.add_argument("--figure", help="PNG path for the sync section's onset rasters")
    a = ap.parse_args()
    print(json.dumps(main(a.bundle, a.n, a.sync, a.only, a.figure, a.beta), indent=2, default=float))
