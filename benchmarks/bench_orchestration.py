"""Orchestration overhead of the embedded run on one 2-minute asset (on demand).

    .venv/bin/python benchmarks/bench_orchestration.py [--minutes 2] [--tracks 5] [--steps 25]
        [--keep DIR] [--json FILE] [--prefect-home DIR]

Builds a FoleyWorld asset of the given length (12 shots of 10 s for 2 minutes, 128×128, silent,
as the demo library's), then runs `stepfoley run` on it in this process, exactly as the CLI does
(local Prefect engine with its ephemeral server, SQLite, the shipped default bundle, default
generation settings), with timers around the calls that do the real work. Each timer counts
its own time minus that of the timed calls inside it, so nothing is counted twice:

  model forward   StepByStepV2APipeline.generate_track (conditioning + the ODE's forwards),
                  the prompt stage's captioner / scorer / taggers (tasks.shot_prompts.scene_prompts)
  codec           the bundle codec's encode/decode (pipeline encode_audio / decode_latent)
  ffmpeg / libav  every ffmpeg subprocess (run_ffmpeg), PyAV decoding: frames, audio, probe,
                  shot detection (decode-bound), the mux verification
  model load      loading the bundle, captioner and scorer (once per process): on the
                  run's path, i.e. a stage waiting for the load; the load itself runs on the
                  CLI's preload thread beside the run and is reported on its own
  audio DSP/I/O   the mix (loudness, crossfades, resampling, limiter), stem FLAC writes/reads,
                  content hashes
  prefect server  the start of the local ephemeral API server (once per process): the time the
                  run waits for it (the CLI forks it while it loads the models,
                  flows/prefect_api.py)

Orchestration overhead, as the issue defines it, is wall − (model forward + codec + ffmpeg);
the script also reports what is left when the one-time start-up costs and the audio DSP are
taken out too, which is the time spent in Prefect's engine, the database and our bookkeeping.
The sum of the tracks' recorded provenance timings (``track.wall_s``) is printed as a cross-check
of the generation timer.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import logging
import os
import re
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# (category, "module:qualname") — the calls timed; a name that does not exist is reported.
TIMED: list[tuple[str, str]] = [
    ("model forward", "models.generation.pipeline:StepByStepV2APipeline.generate_track"),
    ("model forward", "tasks.shot_prompts:scene_prompts"),
    ("codec", "models.generation.pipeline:StepByStepV2APipeline.decode_latent"),
    ("codec", "models.generation.pipeline:StepByStepV2APipeline.encode_audio"),
    ("model load", "tasks.generate:load_bundle"),
    ("model load", "tasks.shot_prompts:load_prompt_models"),
    ("model load", "tasks.shot_prompts:_real_taggers"),
    ("ffmpeg / libav", "tasks.ffmpeg_bin:run_ffmpeg"),
    ("ffmpeg / libav", "tasks.frames:read_frames"),
    ("ffmpeg / libav", "tasks.audio:decode_audio"),
    ("ffmpeg / libav", "tasks.audio:has_audio_stream"),
    ("ffmpeg / libav", "tasks.scenes:detect_shots"),
    ("ffmpeg / libav", "tasks.probe:probe"),
    ("ffmpeg / libav", "tasks.mux:video_packets"),
    ("audio DSP / I/O", "tasks.mix:mix_to_files"),
    ("audio DSP / I/O", "tasks.audio_files:write_flac_atomic"),
    ("audio DSP / I/O", "tasks.generate:read_stem"),
    ("audio DSP / I/O", "tasks.ingest:sha256_file"),
    ("prefect server", "prefect.server.api.server:SubprocessASGIServer.start"),
    ("prefect server", "flows.prefect_api:ForkedAPIServer.start"),
]
WORK = ("model forward", "codec", "ffmpeg / libav")
PRELOAD_THREAD = "stepfoley-preload"  # tasks/preload.py
OVERLAPPED = "model load on the preload thread (overlapped)"
ONE_TIME = ("model load", "prefect server")


class Timers:
    """Exclusive wall time per category, per thread (nested timed calls are subtracted)."""

    def __init__(self) -> None:
        self.total: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()
        self._local = threading.local()

    def wrap(self, category: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        timers = self

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            stack = timers._local.__dict__.setdefault("stack", [])
            stack.append(0.0)  # time of timed calls inside this one
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - t0
                inner = stack.pop()
                if stack:
                    stack[-1] += elapsed
                cat = category
                if threading.current_thread().name == PRELOAD_THREAD:
                    cat = OVERLAPPED  # beside the run, not on its path: wall already has it
                with timers._lock:
                    timers.total[cat] += elapsed - inner
                    timers.calls[cat] += 1

        timed.__wrapped_original__ = fn  # type: ignore[attr-defined]
        return timed


class ClientRetries(logging.Handler):
    """Counts the Prefect client's retry waits (a 503 from the server, e.g. SQLite's "database
    is locked", is retried after 2 s): they land in "orchestration proper"."""

    PATTERN = re.compile(r"Another attempt will be made in ([0-9.]+)s")

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.waits: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        m = self.PATTERN.search(record.getMessage())
        if m:
            self.waits.append(float(m.group(1)))

    def install(self) -> None:
        log = logging.getLogger("prefect.client")
        log.addHandler(self)
        log.setLevel(logging.DEBUG)
        log.propagate = False  # the debug records only here, not on the console


def install(timers: Timers) -> list[str]:
    """Wrap every TIMED callable where it is defined and wherever it was imported by name."""
    missing = []
    for category, target in TIMED:
        mod_name, qual = target.split(":")
        try:
            owner: Any = importlib.import_module(mod_name)
            *path, attr = qual.split(".")
            for part in path:
                owner = getattr(owner, part)
            original = owner.__dict__[attr] if isinstance(owner, type) else getattr(owner, attr)
        except (ImportError, AttributeError, KeyError):
            missing.append(target)
            continue
        wrapped = timers.wrap(category, original)
        setattr(owner, attr, wrapped)
        if isinstance(owner, type):
            continue
        for name, module in list(sys.modules.items()):  # `from x import f` copies
            if module is None or not name.split(".")[0] in ("tasks", "flows", "models"):
                continue
            for key, val in list(vars(module).items()):
                if val is original:
                    setattr(module, key, wrapped)
    return missing


def build_asset(out_dir: Path, minutes: float) -> Path:
    """A silent FoleyWorld video of ``minutes`` (10 s shots, 128×128 like the demo library)."""
    from tasks.demo_library import DEMO_SEED_BASE, _scene, _write

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"foleyworld-{minutes:g}min.mp4"
    if not path.exists():
        shots = int(round(minutes * 60 / 10.0))
        _write(path, (_scene(DEMO_SEED_BASE + 5000 + i, 10.0, None, 128) for i in range(shots)),
               128, None)
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--tracks", type=int, default=None, help="default: the CLI's (5)")
    ap.add_argument("--steps", type=int, default=None, help="default: the CLI's (25)")
    ap.add_argument("--keep", type=Path, help="work directory to keep (default: a temp dir)")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    ap.add_argument("--prefect-home", type=Path,
                    help="an existing Prefect home (a used data dir's prefect/) instead of a new "
                         "one: the server start without its first-time database migration")
    args = ap.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="stepfoley-bench-orch-"))
    data = work / "data"
    if data.exists() and any(data.iterdir()):
        raise SystemExit(f"{data} exists: the benchmark needs a fresh data dir (no cached stages)")
    # What the CLI exports before Prefect is imported: its home in the data dir, offline.
    (data / "prefect").mkdir(parents=True)
    os.environ["PREFECT_HOME"] = str((args.prefect_home or data / "prefect").resolve())
    os.environ["STEPFOLEY_DATA_DIR"] = str(data.resolve())
    from tasks.config import apply_offline_defaults

    apply_offline_defaults()

    t_import = time.perf_counter()
    import flows.backfill  # noqa: F401  (everything the run imports, before wrapping)
    import flows.cli
    import tasks.asset_prompts  # noqa: F401
    import tasks.generate  # noqa: F401
    import tasks.mix  # noqa: F401
    import tasks.mux  # noqa: F401
    import tasks.asset_stages  # noqa: F401
    import prefect.server.api.server  # noqa: F401
    t_import = time.perf_counter() - t_import

    asset = build_asset(work / "library", args.minutes)
    timers = Timers()
    missing = install(timers)
    retries = ClientRetries()
    retries.install()
    argv = ["--data-dir", str(data), "run", str(asset.parent)]
    argv += ["--tracks", str(args.tracks)] if args.tracks else []
    argv += ["--steps", str(args.steps)] if args.steps else []
    t0 = time.perf_counter()
    rc = flows.cli.main(argv)
    wall = time.perf_counter() - t0

    from sqlalchemy import func, select

    from sql.schema import SceneWindow, Track
    from sql.session import make_engine, session_scope

    with session_scope(make_engine(f"sqlite:///{data / 'stepfoley.db'}")) as s:
        windows = s.execute(select(func.count(SceneWindow.id))).scalar_one()
        tracks = s.execute(select(func.count(Track.id))).scalar_one()
        track_wall = float(s.execute(select(func.sum(Track.wall_s))).scalar_one() or 0.0)

    cat = {k: round(v, 3) for k, v in sorted(timers.total.items())}
    work_s = sum(timers.total[k] for k in WORK)
    rest = wall - sum(v for k, v in timers.total.items() if k != OVERLAPPED)
    result = {
        "exit_code": rc, "asset_minutes": args.minutes, "windows": windows, "tracks": tracks,
        "wall_s": round(wall, 3), "import_s": round(t_import, 3), "categories_s": cat,
        "calls": dict(timers.calls), "track_wall_s_sum (provenance)": round(track_wall, 3),
        "overhead_s (wall - model - codec - ffmpeg)": round(wall - work_s, 3),
        "overhead_pct": round(100 * (wall - work_s) / wall, 2),
        "orchestration_only_s (also minus one-time start-up and audio DSP)": round(rest, 3),
        "orchestration_only_pct": round(100 * rest / wall, 2),
        "orchestration_pct_of_per_asset_wall": round(
            100 * rest / (wall - sum(timers.total[k] for k in ONE_TIME)), 2),
        "prefect_client_retry_waits_s": retries.waits,
        "missing_timers": missing, "cpus": os.cpu_count(),
        "prefect_home": "reused" if args.prefect_home else "new",
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
