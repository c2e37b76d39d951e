"""Media stages on the CPU: scene detection vs raw decode, mux vs copy, peak RSS vs length (on demand).

    .venv/bin/python benchmarks/bench_media.py [--quick] [--repeats N] [--keep DIR]

Every clip is made here with ffmpeg's lavfi sources (1280×720, 25 fps, H.264), segments of
different test patterns joined by hard cuts at known times, in a temporary directory.

a. **Scene detection throughput.** ``tasks.scenes.detect_shots`` exactly as the pipeline calls
   it (hard cuts, and in the same decoding pass the per-frame statistics and the fade /
   dissolve / flash analysis of tasks/transitions.py), on a 2-minute clip (cuts at 30, 50, 75, 95 s; ``--quick``: 30 s), against ffmpeg decoding
   the same file to the detector's analysis size (``scale=W:H,format=bgr24``, ``-f null``), both
   in frames/s, interleaved pairs, medians (and CPU seconds, steadier on a shared machine);
   target detection ≥ 0.8 × raw decode. Also,
   once each: the old ``SceneManager``/``open_video`` path (for before/after), PyAV decoding
   alone, and the analysis width swept over 128/192/256/384 px with the cut error in frames.
b. **Mux vs copy.** ``tasks.mux.mux_output`` (MKV, a mix and 2 stems written as FLAC with
   soundfile, chapters, verification, sha256) against ``shutil.copyfile`` of the same input,
   interleaved, median; target ≤ 2×. Also ffmpeg's bare picture remux (the floor of any ffmpeg
   mux) and the MP4 variant (AAC encode).
c. **Peak RSS vs length.** In a fresh subprocess per clip: scene detection, the windows, then
   ``tasks.frames.read_frames`` for every window at every frame spec of the default bundle (as
   generation reads them), then ``ru_maxrss`` of the process (``VmHWM`` as a cross-check; the
   ffmpeg children are separate processes, one per window and spec, and not counted).
   A 1-minute clip (5 shots, libx264 ultrafast) against a 30-minute one made by stream-copying
   it 30 times (same 720p, same 25 fps; ``--quick``: 15 s vs 90 s); target within 10 %.

Prints the results as JSON, then as a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasks.config import DEFAULT_BUNDLE, Settings  # noqa: E402
from tasks.ffmpeg_bin import ffmpeg_path, run_ffmpeg  # noqa: E402

FPS = 25
SIZE = (1280, 720)
# lavfi sources cycled over the segments; the 5th is testsrc2 negated (different colours,
# same motion) so a loop of the pattern still cuts at its seam
SOURCES = ["testsrc2", "smptehdbars", "testsrc", "rgbtestsrc", "testsrc2"]


def make_clip(path: Path, segments: list[float], preset: str) -> list[float]:
    """Write a 720p/25 fps H.264 clip of ``segments`` (seconds each); return its cut times."""
    w, h = SIZE
    args: list[str] = ["-y"]
    for i, d in enumerate(segments):
        args += ["-f", "lavfi", "-i", f"{SOURCES[i % len(SOURCES)]}=size={w}x{h}:rate={FPS}:duration={d}"]
    chain = "".join(f"[s{i}]" for i in range(len(segments)))
    pre = ";".join(f"[{i}:v]{'negate' if i % len(SOURCES) == 4 else 'null'}[s{i}]" for i in range(len(segments)))
    run_ffmpeg([*args, "-filter_complex", f"{pre};{chain}concat=n={len(segments)}:v=1:a=0,format=yuv420p[v]",
                "-map", "[v]", "-c:v", "libx264", "-preset", preset, str(path)])
    return [float(x) for x in np.cumsum(segments)[:-1]]


def loop_clip(src: Path, dst: Path, times: int) -> None:
    """``times`` copies of ``src`` back to back, packets copied (no re-encode)."""
    run_ffmpeg(["-y", "-stream_loop", str(times - 1), "-i", str(src), "-c", "copy", str(dst)])


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def cpu_s(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def timed_cpu(fn: Callable[[], Any], who: int) -> tuple[float, float]:
    """(wall s, CPU s of ``who``: this process with all its threads, or its waited-for children)."""
    c0, t0 = cpu_s(who), time.perf_counter()
    fn()
    return time.perf_counter() - t0, cpu_s(who) - c0


def cut_errors(found: list[float], truth: list[float]) -> dict[str, Any]:
    """Largest distance (frames) from each true cut to the nearest found one, and extras."""
    errs = [min((abs(f - t) * FPS for f in found), default=float("inf")) for t in truth]
    extra = [f for f in found if min(abs(f - t) for t in truth) * FPS > 1.0 + 1e-6] if truth else found
    return {"max_error_frames": round(max(errs, default=0.0), 3), "missed": sum(e > 1.0 + 1e-6 for e in errs),
            "extra": len(extra)}


# ------------------------------------------------------------------ a. scene detection
def scenemanager_cuts(path: Path) -> list[float]:
    """The previous detection path (PySceneDetect ``open_video`` + ``SceneManager``), for reference."""
    from scenedetect import AdaptiveDetector, SceneManager, open_video

    video = open_video(str(path), backend="pyav", suppress_output=True)
    manager = SceneManager()
    manager.auto_downscale = True
    manager.add_detector(AdaptiveDetector(adaptive_threshold=3.0, min_scene_len=6))
    manager.detect_scenes(video=video, show_progress=False)
    return [float(s[0].seconds) for s in manager.get_scene_list()[1:]]


def pyav_decode(path: Path) -> int:
    import av

    with av.open(str(path)) as c:
        c.streams.video[0].thread_type = "AUTO"
        return sum(1 for _ in c.decode(video=0))


def bench_scenes(clip: Path, truth: list[float], seconds: float, repeats: int) -> dict[str, Any]:
    from tasks.scenes import DETECT_MIN_WIDTH, detect_cuts, detect_shots, detection_size

    settings = Settings()
    frames = int(round(seconds * FPS))
    w, h = detection_size(*SIZE)
    raw_args = ["-i", str(clip), "-map", "0:v:0", "-vf", f"scale={w}:{h}:flags=bilinear,format=bgr24",
                "-f", "null", "-"]
    clip.read_bytes()  # page cache warm for both sides
    raw, det, raw_cpu, det_cpu = [], [], [], []
    shots = []
    # interleaved pairs: on a shared machine the load changes between runs, so each detection
    # run is compared with the raw decode run next to it, and CPU seconds are kept as well
    for _ in range(repeats):
        wall, cpu = timed_cpu(lambda: run_ffmpeg(raw_args), resource.RUSAGE_CHILDREN)
        raw.append(wall)
        raw_cpu.append(cpu)
        wall, cpu = timed_cpu(lambda: shots.append(detect_shots(clip, min_shot_s=settings.min_shot_s)),
                              resource.RUSAGE_SELF)
        det.append(wall)
        det_cpu.append(cpu)
    found = [s.start_s for s in shots[-1][1:]]
    raw_fps, det_fps = frames / statistics.median(raw), frames / statistics.median(det)
    pair = statistics.median(r / d for r, d in zip(raw, det))
    cpu_pair = statistics.median(r / d for r, d in zip(raw_cpu, det_cpu))
    sweep = {}
    for mw in (128, 192, 256, 384):
        out: list[Any] = []
        t = timed(lambda: out.append(detect_cuts(clip, min_width=mw)))
        sweep[mw] = {"size": "x".join(map(str, detection_size(*SIZE, mw))), "fps": round(frames / t),
                     **cut_errors(out[0][0], truth)}
    # the transition analysis alone (fades, dissolves, flashes over the per-frame series that
    # the detection pass collects): included in the detection runs above
    from tasks.scenes import scan_video
    from tasks.transitions import find_transitions

    scan = scan_video(clip)
    t_tr = timed(lambda: find_transitions(scan.series, scan.cuts, scan.duration_s, scan.fps))
    old: list[list[float]] = []
    t_old = timed(lambda: old.append(scenemanager_cuts(clip)))
    t_av = timed(lambda: pyav_decode(clip))
    return {"clip_s": seconds, "frames": frames, "analysis_size": f"{w}x{h}", "min_width": DETECT_MIN_WIDTH,
            "raw_decode_fps": round(raw_fps), "detection_fps": round(det_fps),
            "ratio": round(det_fps / raw_fps, 3), "ratio_paired": round(pair, 3),
            "ratio_cpu": round(cpu_pair, 3), "target_ratio": 0.8,
            "raw_runs_s": [round(x, 3) for x in raw], "detection_runs_s": [round(x, 3) for x in det],
            "raw_cpu_s": [round(x, 2) for x in raw_cpu], "detection_cpu_s": [round(x, 2) for x in det_cpu],
            "cuts_true": truth, "cuts_found": found, **cut_errors(found, truth),
            "pyav_decode_only_fps": round(frames / t_av), "transition_analysis_s": round(t_tr, 3),
            "scenemanager_fps": round(frames / t_old), "scenemanager_cuts": cut_errors(old[0], truth),
            "width_sweep": sweep}


# ------------------------------------------------------------------ b. mux
def write_audio(out: Path, seconds: float) -> dict[str, Any]:
    """Two stems and their mix, 48 kHz FLAC PCM_24 as tasks/mix.py writes them."""
    import soundfile as sf

    rate = 48000
    t = np.arange(int(round(seconds * rate))) / rate
    rng = np.random.default_rng(0)
    s1 = 0.25 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.3 * t))
    s2 = 0.1 * rng.standard_normal(t.size) * (np.sin(2 * np.pi * 2 * t) > 0.6)
    out.mkdir(parents=True, exist_ok=True)
    stems = []
    for k, x in ((1, s1), (2, s2)):
        p = out / f"stem_{k:02d}.flac"
        sf.write(p, x.astype(np.float32), rate, format="FLAC", subtype="PCM_24")
        stems.append({"order": k, "path": str(p), "title": f"sound {k}"})
    sf.write(out / "mix.flac", (0.7 * (s1 + s2)).astype(np.float32), rate, format="FLAC", subtype="PCM_24")
    return {"mix_path": str(out / "mix.flac"), "stems": stems}


def bench_mux(clip: Path, cuts: list[float], seconds: float, work: Path, repeats: int) -> dict[str, Any]:
    from tasks.mux import mux_output

    mix = write_audio(work / "audio", seconds)
    out = work / "mux"
    starts = [0.0, *cuts]

    def mux(container: str) -> None:
        mux_output(clip, mix, out, container=container, name="bench", has_original=False,
                   scene_starts=starts, duration_s=seconds, fps=float(FPS))

    clip.read_bytes()
    mux("mkv")  # warm-up: imports, page cache of the audio
    m, c = [], []
    for _ in range(repeats):
        m.append(timed(lambda: mux("mkv")))
        c.append(timed(lambda: shutil.copyfile(clip, work / "copy.mp4")))
    remux = statistics.median(timed(lambda: run_ffmpeg(["-y", "-i", str(clip), "-map", "0:v:0", "-c", "copy",
                                                         str(work / "remux.mkv")])) for _ in range(repeats))
    mp4 = statistics.median(timed(lambda: mux("mp4")) for _ in range(max(1, repeats // 2)))
    mux_s, copy_s = statistics.median(m), statistics.median(c)
    return {"clip_mb": round(clip.stat().st_size / 2**20, 1), "mux_mkv_s": round(mux_s, 3),
            "copy_s": round(copy_s, 4), "ratio": round(mux_s / copy_s, 1), "target_ratio": 2.0,
            "ffmpeg_picture_remux_s": round(remux, 3), "mux_over_remux": round(mux_s / remux, 1),
            "mux_mp4_s": round(mp4, 3), "mux_runs_s": [round(x, 3) for x in m],
            "copy_runs_s": [round(x, 4) for x in c]}


# ------------------------------------------------------------------ c. peak RSS
def bundle_frame_specs(bundle: Path) -> dict[str, dict[str, Any]]:
    """The bundle's frame specs, read from its config (models.demo_family.features.VideoFeatures.frame_specs
    without importing torch, whose 300+ MB would only dilute the comparison)."""
    cfg = json.loads((bundle / "video_features" / "config.json").read_text())
    return {"clip": {"fps": float(cfg["clip_fps"]), "size": int(cfg["clip_size"]), "crop": "resize"},
            "sync": {"fps": float(cfg["sync_fps"]), "size": int(cfg["sync_size"]), "crop": "resize"}}


def vm_hwm_kib() -> int:
    """The process's own peak resident set (``VmHWM``), a cross-check of ``ru_maxrss``."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return -1


def rss_child(path: Path, bundle: Path) -> dict[str, Any]:
    """Scenes + frames of every window, as the pipeline runs them; peak RSS (KiB) at the end."""
    from tasks.frames import read_frames
    from tasks.scenes import detect_shots, plan_windows

    s = Settings()
    specs = bundle_frame_specs(bundle)
    t0 = time.perf_counter()
    shots = detect_shots(path, min_shot_s=s.min_shot_s)
    windows = plan_windows(shots, window_s=s.window_s, overlap_s=s.overlap_s)
    after_scenes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t1 = time.perf_counter()
    n_frames = 0
    for w in windows:
        for spec in specs.values():
            n_frames += len(read_frames(path, w.start_s, w.end_s, spec))
    return {"shots": len(shots), "windows": len(windows), "frames_read": n_frames, "specs": specs,
            "scenes_s": round(t1 - t0, 1), "frames_s": round(time.perf_counter() - t1, 1),
            "maxrss_after_scenes_kib": after_scenes,
            "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "vm_hwm_kib": vm_hwm_kib()}


# Linux keeps a process's ru_maxrss across fork and exec: a child started from this (large)
# process would report this process's RSS. A minimal Python in between forks the measured
# process from a ~10 MB one, so its ru_maxrss is its own.
_LAUNCHER = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"


def measure_rss(path: Path, bundle: Path) -> dict[str, Any]:
    """Run :func:`rss_child` in a fresh process (see ``_LAUNCHER``)."""
    proc = subprocess.run([sys.executable, "-c", _LAUNCHER, sys.executable, __file__, "--rss-child",
                           str(path), "--bundle", str(bundle)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"RSS child failed on {path}: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_rss(work: Path, short_s: float, segments: list[float], loops: int, bundle: Path) -> dict[str, Any]:
    short, long = work / "short.mp4", work / "long.mp4"
    make_clip(short, segments, "ultrafast")
    loop_clip(short, long, loops)
    a = measure_rss(short, bundle)
    b = measure_rss(long, bundle)
    return {"short_s": short_s, "long_s": short_s * loops, "short": a, "long": b,
            "ratio": round(b["maxrss_kib"] / a["maxrss_kib"], 3), "target_ratio": 1.10}


# ------------------------------------------------------------------ report
def table(r: dict[str, Any]) -> str:
    a, b, c = r["scenes"], r["mux"], r["rss"]
    mb = lambda kib: f"{kib / 1024:.0f} MiB"  # noqa: E731
    sweep = ", ".join(f"{k} px {v['fps']} fps (±{v['max_error_frames']:g} fr)" for k, v in a["width_sweep"].items())
    rows = [
        ("| measure | value | target |", "|---|---|---|"),
        (f"| scene detection, {a['clip_s']:.0f} s 720p clip ({a['frames']} frames, analysis {a['analysis_size']}) "
         f"| {a['detection_fps']} frames/s | |",),
        (f"| raw ffmpeg decode to {a['analysis_size']} | {a['raw_decode_fps']} frames/s | |",),
        (f"| detection / raw decode: of median fps; median of interleaved pairs; of CPU seconds "
         f"| **{a['ratio']:.2f}**; {a['ratio_paired']:.2f}; {a['ratio_cpu']:.2f} | ≥ 0.8 |",),
        (f"| cuts: max error, missed, extra | {a['max_error_frames']:g} frames, {a['missed']}, {a['extra']} | ±1 frame |",),
        (f"| of which the transition analysis over the frame series | {a['transition_analysis_s']:.3f} s | |",),
        (f"| before: PySceneDetect SceneManager path | {a['scenemanager_fps']} frames/s | |",),
        (f"| PyAV decode only (frame threads) | {a['pyav_decode_only_fps']} frames/s | |",),
        (f"| analysis width sweep | {sweep} | |",),
        (f"| mux (MKV, mix + 2 FLAC stems, verify, sha256), {b['clip_mb']} MB input | {b['mux_mkv_s']:.3f} s | |",),
        (f"| shutil.copyfile of the input | {b['copy_s']:.4f} s | |",),
        (f"| mux / copy | **{b['ratio']:.1f}** | ≤ 2 |",),
        (f"| ffmpeg picture-only remux; mux / remux | {b['ffmpeg_picture_remux_s']:.3f} s; {b['mux_over_remux']:.1f} | |",),
        (f"| mux MP4 (AAC encode) | {b['mux_mp4_s']:.3f} s | |",),
        (f"| peak RSS, scenes + frames, {c['short_s']:.0f} s clip ({c['short']['windows']} windows, "
         f"{c['short']['frames_read']} frames read) | {mb(c['short']['maxrss_kib'])} | |",),
        (f"| peak RSS, scenes + frames, {c['long_s']:.0f} s clip ({c['long']['windows']} windows, "
         f"{c['long']['frames_read']} frames read) | {mb(c['long']['maxrss_kib'])} | |",),
        (f"| RSS long / short | **{c['ratio']:.3f}** | ≤ 1.10 |",),
    ]
    return "\n".join(line for row in rows for line in row)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short clips (~1 minute in all)")
    ap.add_argument("--repeats", type=int, default=None, help="interleaved repeats (default 3, quick 2)")
    ap.add_argument("--keep", type=Path, default=None, help="write the clips here and keep them")
    ap.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    ap.add_argument("--rss-child", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child is not None:
        print(json.dumps(rss_child(args.rss_child, args.bundle)))
        return
    repeats = args.repeats or (2 if args.quick else 5)
    if args.quick:
        seg, rss_seg, loops = [10.0, 8.0, 12.0], [5.0, 4.0, 6.0], 6
    else:
        seg, rss_seg, loops = [30.0, 20.0, 25.0, 20.0, 25.0], [15.0, 10.0, 15.0, 10.0, 10.0], 30
    tmp = None
    if args.keep is not None:
        work = args.keep
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="stepfoley-bench-")
        work = Path(tmp.name)
    try:
        t0 = time.perf_counter()
        clip = work / "cuts720.mp4"
        cuts = make_clip(clip, seg, "veryfast")
        gen_s = time.perf_counter() - t0
        results = {"machine": {"cpus": os.cpu_count(), "load_avg_at_start": [round(x, 2) for x in os.getloadavg()]},
                   "ffmpeg": ffmpeg_path().rsplit("/", 1)[-1], "quick": args.quick, "repeats": repeats,
                   "clip_generation_s": round(gen_s, 1)}
        results["scenes"] = bench_scenes(clip, cuts, sum(seg), repeats)
        results["mux"] = bench_mux(clip, cuts, sum(seg), work, max(repeats, 5))
        results["rss"] = bench_rss(work, sum(rss_seg), rss_seg, loops, args.bundle)
        results["total_s"] = round(time.perf_counter() - t0, 1)
    finally:
        if tmp is not None:
            tmp.cleanup()
    print(json.dumps(results, indent=1))
    print()
    print(table(results))


if __name__ == "__main__":
    main()
