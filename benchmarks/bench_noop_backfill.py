"""What a nightly backfill costs per asset that is already done (issue #18 §4, on demand).

    .venv/bin/python benchmarks/bench_noop_backfill.py [--sizes 100,1000,10000] [--real 3]
        [--repeats 2] [--work DIR] [--json FILE] [--profile-size N] [--discover-only]

1. **Library.** One tiny clip is made with ffmpeg (64×36, 25 fps, 1 s, H.264, lavfi
   ``testsrc``); the library's N files are that clip with one ISO-BMFF ``free`` box appended
   that carries the file's number, so every file is a valid MP4 that probes like the original
   and has its own sha256 (identical bytes would dedupe to one asset). Each file's mtime is set
   an hour back, as an archive's are (a file modified within the last seconds is never trusted
   by its stat: see tasks/stat_index.py).
2. **Done, the cheapest faithful way.** N = 10,000 cannot be processed for real here (hours), so
   each library is registered by the pipeline's own first pass, ``tasks.asset_stages.discover``
   (probe, sha256, asset and path rows, and whatever index the code under test keeps), and every
   asset is then marked ``done`` with ``sql.repository.set_asset_status``: the rows a real
   first run leaves that a rerun reads. What a real first run also leaves (windows, prompts,
   tracks, mix, output rows) is not read by a rerun of a done asset. ``--real K`` additionally
   runs K files through the whole pipeline for real (``stepfoley run``, shipped bundle, 3 steps,
   2 tracks) and times the no-op rerun of that library: the issue's "3 assets" figure.
3. **The no-op rerun**, timed as a user runs it: ``python -m flows --data-dir D run LIB`` in a
   fresh process (the local Prefect API it starts, the shipped bundle's preload beside it),
   ``--repeats`` times per size; wall clock per run. The cost per done asset is the slope of
   the wall time over the library size, (T(N_max) − T(N_min)) / (N_max − N_min), which takes
   out the per-run constant (Python, torch and Prefect imports, the API start, the run row,
   the report).
   Beside every no-op run, the baseline: ``python -c "import torch, prefect"`` in a fresh
   process, timed right before it; the run's cost is reported as that ratio too (absolute
   times on the shared 2-core box move with its load, the ratio much less).
4. **Where the time goes**: the same command once more under ``cProfile`` for
   ``--profile-size`` (default the largest size), top functions by cumulative and own time.

5. ``--discover-only``: the discovery stage alone, in process, on each done library (``--work``
   reuses those of a full run): the part of a no-op run that grows with the library, without
   the run's constant, which on a busy shared machine varies by more than the whole of it.

Prints JSON (also to ``--json``) and a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from io import StringIO
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tasks.ffmpeg_bin import run_ffmpeg  # noqa: E402

AGE_S = 3600.0  # files an hour old: past any racy-stat window


def base_clip(path: Path) -> bytes:
    """A 1-s 64×36 H.264 MP4 (faststart: the moov before the data, the free box appended last)."""
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc=size=64x36:rate=25:duration=1", "-c:v", "libx264",
                "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-movflags", "+faststart", "-y",
                str(path)])
    return path.read_bytes()


def make_library(root: Path, n: int, clip: bytes) -> Path:
    """``n`` distinct valid MP4 files under ``root`` (100 per sub-folder, as archives nest)."""
    root.mkdir(parents=True, exist_ok=True)
    old = time.time() - AGE_S
    for i in range(n):
        d = root / f"reel{i // 100:04d}"
        d.mkdir(exist_ok=True)
        p = d / f"clip{i:06d}.mp4"
        # ISO-BMFF top-level box: 32-bit size, type "free", payload = the file's number
        p.write_bytes(clip + struct.pack(">I4sQ", 16, b"free", i))
        os.utime(p, (old, old))
    return root


def bench_env(work: Path) -> dict[str, str]:
    return {**os.environ, "PREFECT_HOME": str(work / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PREFECT_LOGGING_LEVEL": "WARNING"}


def mark_done(lib: Path, data: Path) -> dict[str, float]:
    """Register the library as the pipeline's first pass does, then mark every asset done."""
    # Imported here: the library files are written before the pipeline (torch, Prefect) loads.
    from sql.repository import set_asset_status
    from tasks import asset_stages, runs
    from tasks.config import load_settings
    from tasks.media_paths import to_uri

    s = load_settings({"data_dir": data}).to_json()
    t0 = time.perf_counter()
    run_id = runs.start_run("bench-setup", {"library": str(lib)}, s)
    todo = asset_stages.discover(to_uri(lib), s, run_id)
    t1 = time.perf_counter()
    with runs.session(s) as db:
        for item in todo:
            set_asset_status(db, item["asset_id"], "done")
    return {"registered": len(todo), "first_discover_s": t1 - t0,
            "mark_done_s": time.perf_counter() - t1}


def discover_timing(lib: Path, data: Path, repeats: int) -> list[float]:
    """Seconds of the discovery stage alone, in this process, on a library that is all done:
    the only part of a no-op run that depends on the library's size (the run's constant of
    imports, API start and bookkeeping taken out, so it is far less noisy on a busy machine)."""
    from tasks import asset_stages, runs
    from tasks.config import load_settings
    from tasks.media_paths import to_uri

    s = load_settings({"data_dir": data}).to_json()
    out = []
    for _ in range(repeats):
        run_id = runs.start_run("bench-discover", {"library": str(lib)}, s)
        t0 = time.perf_counter()
        todo = asset_stages.discover(to_uri(lib), s, run_id)
        out.append(time.perf_counter() - t0)
        assert todo == [], f"{len(todo)} files to do in a library that is all done"
    return out


def noop_run(lib: Path, data: Path, env: dict[str, str], profile: Path | None = None,
             extra: list[str] | None = None) -> float:
    """Wall seconds of ``stepfoley run LIB`` in a fresh process (must exit 0)."""
    prefix = [sys.executable] + (["-m", "cProfile", "-o", str(profile)] if profile else [])
    cmd = prefix + ["-m", "flows", "--data-dir", str(data), "run", str(lib), *(extra or [])]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=7200)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n"
                           f"{proc.stderr[-3000:]}")
    return wall


def baseline_import(env: dict[str, str]) -> float:
    """Wall seconds of a fresh ``python -c "import torch, prefect"``: the reference the no-op
    run is measured against (what loading the model stack and the orchestrator alone costs)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, prefect"], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=600)
    return time.perf_counter() - t0


def timed_pairs(lib: Path, data: Path, env: dict[str, str], repeats: int) -> dict[str, list[float]]:
    """``repeats`` × (baseline import, no-op run), interleaved so both see the same load."""
    base, runs_s = [], []
    for _ in range(repeats):
        base.append(baseline_import(env))
        runs_s.append(noop_run(lib, data, env))
    return {"baseline_import_s": base, "noop_s": runs_s,
            "ratio": [r / b for r, b in zip(runs_s, base)]}


def profile_summary(prof: Path, top: int = 25) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key in ("cumulative", "tottime"):
        buf = StringIO()
        st = pstats.Stats(str(prof), stream=buf)
        st.strip_dirs().sort_stats(key).print_stats(top)
        out[key] = [ln for ln in buf.getvalue().splitlines() if ln.strip()][-top - 1:]
    return out


def count_calls(prof: Path, names: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Primitive calls and cumulative seconds of the functions named (``file:function``)."""
    st = pstats.Stats(str(prof))
    found = {n: {"calls": 0, "cum_s": 0.0} for n in names}
    for (filename, _line, func), (cc, _nc, _tt, ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        for n in names:
            f, fn = n.split(":")
            if filename.endswith(f) and func == fn:
                found[n]["calls"] += cc
                found[n]["cum_s"] = round(found[n]["cum_s"] + ct, 3)
    return found


# what a done file may cost, and the whole run's parts (the report reads the run's assets)
HOT = ("tasks/ingest.py:sha256_file", "tasks/probe.py:probe", "sql/repository.py:upsert_asset",
       "sql/repository.py:link_run_asset", "tasks/asset_stages.py:discover",
       "tasks/ingest.py:discover", "tasks/known_files.py:__init__", "tasks/known_files.py:close",
       "tasks/report.py:report_run", "flows/cli_run.py:_print_summary",
       "tasks/warm_imports.py:import_pipeline_modules", "flows/backfill.py:backfill_library",
       "flows/cli_run.py:run_library")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100,1000,10000")
    ap.add_argument("--real", type=int, default=3, help="files run for real first (0: skip)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--profile-size", type=int, default=None)
    ap.add_argument("--work", type=Path, default=None, help="keep everything here")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--discover-only", action="store_true",
                    help="time only the discovery stage in process (reuses --work's libraries)")
    args = ap.parse_args()
    sizes = sorted(int(x) for x in args.sizes.split(","))
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-noop-"))
    work.mkdir(parents=True, exist_ok=True)
    env = bench_env(work)
    os.environ.update({k: env[k] for k in ("PREFECT_HOME",)})
    clip = base_clip(work / "base.mp4")
    if args.discover_only:
        timing: dict[str, Any] = {"uptime": os.popen("uptime").read().strip(), "sizes": {}}
        for n in sizes:
            lib, data = work / f"lib-{n}", work / f"data-{n}"
            if not data.exists():
                make_library(lib, n, clip)
                mark_done(lib, data)
            walls = discover_timing(lib, data, args.repeats)
            timing["sizes"][n] = {"discover_s": walls, "per_file_ms": 1000 * min(walls) / n}
            print(n, timing["sizes"][n], flush=True)
        timing["uptime_after"] = os.popen("uptime").read().strip()
        print(json.dumps(timing, indent=2))
        if args.json:
            args.json.write_text(json.dumps(timing, indent=2))
        return
    result: dict[str, Any] = {"uptime": os.popen("uptime").read().strip(), "clip_bytes": len(clip),
                              "sizes": {}, "git": _git_head()}
    # a first no-op-size run (1 file) pays the Prefect home's first start
    warm_lib, warm_data = make_library(work / "warm-lib", 1, clip), work / "warm-data"
    mark_done(warm_lib, warm_data)
    result["warm_up_s"] = noop_run(warm_lib, warm_data, env)
    if args.real:
        lib, data = make_library(work / f"real-lib-{args.real}", args.real, clip), work / "real-data"
        t = noop_run(lib, data, env, extra=["--steps", "3", "--tracks", "2"])
        pairs = timed_pairs(lib, data, env, args.repeats)
        result["real"] = {"files": args.real, "first_run_s": t, **pairs}
        print(f"real {args.real}: first {t:.1f} s, no-op {pairs}", flush=True)
    for n in sizes:
        lib, data = work / f"lib-{n}", work / f"data-{n}"
        setup: dict[str, Any] = {"reused": True}
        if not data.exists():  # --work keeps libraries (10,000 files take minutes to register)
            setup = mark_done(make_library(lib, n, clip), data)
        pairs = timed_pairs(lib, data, env, args.repeats)
        result["sizes"][n] = {**setup, **pairs}
        print(f"{n}: setup {setup}, no-op {pairs}", flush=True)
    big, small = sizes[-1], sizes[0]
    if big > small:
        t_big, t_small = (min(result["sizes"][n]["noop_s"]) for n in (big, small))
        result["per_done_asset_ms"] = 1000 * (t_big - t_small) / (big - small)
        result["constant_s_est"] = t_small - small * (t_big - t_small) / (big - small)
    pn = args.profile_size or big
    prof = work / f"noop-{pn}.prof"
    lib, data = work / f"lib-{pn}", work / f"data-{pn}"
    if not data.exists():
        lib = make_library(lib, pn, clip)
        mark_done(lib, data)
    result["profiled"] = {"size": pn, "wall_s_under_cprofile": noop_run(lib, data, env, profile=prof),
                          "calls": count_calls(prof, HOT), **profile_summary(prof)}
    result["uptime_after"] = os.popen("uptime").read().strip()
    text = json.dumps(result, indent=2, default=str)
    print(text)
    if args.json:
        args.json.write_text(text)
    print("\n| files | no-op rerun wall s (each run) | `import torch, prefect` s | ratio |"
          "\n|---|---|---|---|")
    for n, r in result["sizes"].items():
        print(f"| {n} | {', '.join(f'{x:.1f}' for x in r['noop_s'])} | "
              f"{', '.join(f'{x:.1f}' for x in r['baseline_import_s'])} | "
              f"{', '.join(f'{x:.2f}' for x in r['ratio'])} |")
    if "per_done_asset_ms" in result:
        print(f"\ncost per done asset: {result['per_done_asset_ms']:.2f} ms "
              f"(per-run constant ≈ {result['constant_s_est']:.1f} s)")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


def _git_head() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip()
    except OSError:
        return "?"


if __name__ == "__main__":
    main()
