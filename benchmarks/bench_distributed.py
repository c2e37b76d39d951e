"""The distributed path against the embedded one (on demand; issue #18).

    .venv/bin/python benchmarks/bench_distributed.py candidates [--n 8] [--json FILE]
    .venv/bin/python benchmarks/bench_distributed.py backfill [--steps 3] [--tracks 2]
        [--bundle DIR] [--repeats 1] [--json FILE]
    .venv/bin/python benchmarks/bench_distributed.py batching [--batch 1 2 4] [--steps 3]
        [--tracks 2] [--bundle DIR] [--repeats 1] [--json FILE]

``candidates``: what one window costs to dispatch, per candidate design of a warm GPU agent,
against a real Prefect server (SQLite) on 127.0.0.1. The unit dispatched is a probe
(benchmarks/dispatch_probes.py): fetch the bundle from the process cache (loading it when the
process is cold) and return; so the time measured is orchestration plus whatever the design
pays per window to have the model in memory. Candidates:

  in-process task      the embedded run's window task (the floor: the local engine only)
  task worker          `prefect.task_worker.serve` in a long-lived process, `task.delay()` +
                       waiting for the task run's final state (an events websocket)
  task worker, tagged  the same with the `gpu` tag under a tag concurrency limit of 1
  served flow          `flow.serve` in a long-lived process, `run_deployment` as a subflow
                       (runner poll 1 s, caller poll 0.2 s: both far below their defaults)

``batching``: the same library through the stack with ``STEPFOLEY_GPU_BATCH`` = each of
``--batch`` (default 1 2 4), interleaved per repeat, a fresh stack and data dir each (a done
asset is skipped, so each B needs its own); per B the backfill's wall as the caller sees it,
the agent's busy time (first batch start → last end) and its generation time, as ratios to
B = 1 in the same repeat; and every track of B > 1 against B = 1's (same seeds, max |Δ| of
the stem samples).

``backfill``: the issue's library (3 demo assets: kitchen-door, three-shots, long-walk = 10
windows) end to end, the shipped bundle, 3 steps, 2 tracks. First the whole `stepfoley run`
command (python -m flows ... run: imports, the local Prefect server, the models' load, as a
user runs it), then the same library on a stack started by `deployments/stack.py up` (one
`cpu` process worker, one warm GPU agent, SQLite provenance DB, the stack's server), the
backfill started with `run_deployment` and timed to its end as the caller sees it (the agent
is already warm, as in production; the worker's poll, the flow run's process start and its
imports are in). Both write fresh data dirs; the track and output hashes must match.
Also reported: the backfill flow run's start latency and its own start → end (from the API),
and the agent's overhead per window (see ``_agent_overhead``), from the server's task runs
and the agent's timing lines (tasks/gpu_agent.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "deployments"))

LIBRARY = ("kitchen-door.mp4", "three-shots.mp4", "long-walk.mkv")


def _server(home: Path) -> tuple[subprocess.Popen, str, dict[str, str]]:
    import stack  # deployments/stack.py

    port = stack.free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": api,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
           "PREFECT_LOGGING_LEVEL": "WARNING", "PREFECT_RUNNER_POLL_FREQUENCY": "1",
           "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    home.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host",
                             "127.0.0.1", "--port", str(port)], env=env, cwd=ROOT,
                            stdout=open(home / "server.log", "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    stack.wait_http(f"{api}/health", 120)
    return proc, api, env


def _stop(proc: subprocess.Popen) -> None:
    import stack

    stack._kill(proc.pid)


def candidates(args: argparse.Namespace) -> dict[str, Any]:
    from tasks.config import DEFAULT_BUNDLE

    work = Path(tempfile.mkdtemp(prefix="stepfoley-bench-dist-"))
    server, api, env = _server(work / "prefect")
    os.environ.update({k: v for k, v in env.items() if k.startswith("PREFECT")})
    bundle = str(args.bundle or DEFAULT_BUNDLE)
    procs: list[subprocess.Popen] = []
    try:
        subprocess.run([sys.executable, "-m", "prefect", "concurrency-limit", "create", "gpu", "1"],
                       env=env, check=True, capture_output=True)
        serve_tasks = ("from benchmarks.dispatch_probes import probe_task, probe_task_tagged\n"
                       "from prefect.task_worker import serve\n"
                       "serve(probe_task, probe_task_tagged, limit=1)\n")
        serve_flow = ("from benchmarks.dispatch_probes import probe_flow\n"
                      "probe_flow.serve(name='probe')\n")
        for name, code in (("task-worker", serve_tasks), ("served-flow", serve_flow)):
            procs.append(subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT,
                                          stdout=open(work / f"{name}.log", "wb"),
                                          stderr=subprocess.STDOUT, start_new_session=True))
        time.sleep(8)  # both subscribed / polling

        from prefect import flow
        from prefect.deployments import run_deployment

        from benchmarks.dispatch_probes import probe_task, probe_task_tagged

        nonce = iter(range(10**6))

        def in_process() -> None:
            probe_task(bundle, next(nonce))

        def deferred(t: Any = probe_task) -> None:
            fut = t.delay(bundle, next(nonce))
            fut.wait(timeout=300)
            assert fut.state.is_completed(), fut.state

        def deferred_tagged() -> None:
            deferred(probe_task_tagged)

        def served() -> None:
            fr = run_deployment("probe-scene/probe", parameters={"bundle": bundle,
                                                                 "nonce": next(nonce)},
                                timeout=300, poll_interval=0.2, as_subflow=True)
            assert fr.state and fr.state.is_completed(), fr.state

        @flow(name="bench-dispatch")
        def measure(n: int) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for label, call, count in (("in-process task", in_process, n),
                                       ("task worker", deferred, n),
                                       ("task worker, gpu tag (limit 1)", deferred_tagged, n),
                                       ("served flow (flow.serve)", served, max(3, n // 2))):
                times = []
                for _ in range(count):
                    t0 = time.perf_counter()
                    call()
                    times.append(time.perf_counter() - t0)
                    print(label, round(times[-1], 3), file=sys.stderr, flush=True)
                out[label] = {"first_s": round(times[0], 3),
                              "median_warm_s": round(statistics.median(times[1:]), 3),
                              "n": count}
            return out

        result = measure(args.n)
    finally:
        for p in procs:
            _stop(p)
        _stop(server)
    result["cpus"] = os.cpu_count()
    return result


BACKFILL_CODE = ("import json,sys,time\n"
                 "from prefect.deployments import run_deployment\n"
                 "t0=time.perf_counter()\n"
                 "fr=run_deployment('backfill-library/on-demand',"
                 "parameters=json.loads(sys.argv[1]),timeout=900,poll_interval=0.5)\n"
                 "print('WALL',time.perf_counter()-t0,fr.state.type.value)\n"
                 "from prefect.client.orchestration import get_client\n"
                 "from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName\n"
                 "with get_client(sync_client=True) as c:\n"
                 "    fr=c.read_flow_run(fr.id)\n"
                 "    trs=c.read_task_runs(task_run_filter=TaskRunFilter("
                 "name=TaskRunFilterName(like_='window ')))\n"
                 "ts=lambda d: d.timestamp() if d else None\n"
                 "print('RUNS',json.dumps({'flow':[ts(fr.created),ts(fr.start_time),"
                 "ts(fr.end_time)],'tasks':[[ts(t.created),ts(t.start_time),ts(t.end_time)]"
                 " for t in trs]}))\n")


def _agent_timings(log: Path) -> list[dict[str, float]]:
    """The agent's per-window timing lines (tasks/gpu_agent.py logs one JSON per window)."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if "stepfoley-window-timing " in line:
            out.append(json.loads(line.split("stepfoley-window-timing ", 1)[1]))
    return out


def backfill(args: argparse.Namespace) -> dict[str, Any]:
    from tasks.config import DEFAULT_BUNDLE
    work = Path(args.keep or tempfile.mkdtemp(prefix="stepfoley-bench-backfill-"))
    lib = _library(work)
    bundle = str(args.bundle or DEFAULT_BUNDLE)
    gen = {"bundle": bundle, "steps": args.steps, "tracks": args.tracks}
    result: dict[str, Any] = {"library": list(LIBRARY), "settings": gen, "runs": []}

    for rep in range(args.repeats):
        # --- embedded: the whole `stepfoley run` command, as a user runs it (imports, the local
        #     Prefect server and the models' load included: the distributed side pays its own)
        emb = work / f"embedded-{rep}"
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "flows", "--data-dir", str(emb), "run", str(lib),
                            "--bundle", bundle, "--steps", str(args.steps), "--tracks",
                            str(args.tracks)], capture_output=True, text=True, cwd=ROOT, timeout=900)
        wall_emb = time.perf_counter() - t0
        if p.returncode != 0:
            raise SystemExit(f"embedded run failed: {p.stdout[-2000:]}{p.stderr[-3000:]}")
        # --- distributed: stack up (not timed), then the backfill through the deployments
        state = work / f"stack-{rep}"
        env = {**os.environ, "STEPFOLEY_LIBRARY": str(lib)}
        up = subprocess.run([sys.executable, str(ROOT / "deployments" / "stack.py"), "up",
                             "--state", str(state)], env=env, capture_output=True, text=True,
                            timeout=300, cwd=ROOT)
        if up.returncode != 0:
            raise SystemExit(up.stdout + up.stderr)
        info = json.loads((state / "pids.json").read_text())
        try:
            _wait_agent_ready(state)
            d = subprocess.run([sys.executable, "-c", BACKFILL_CODE,
                                json.dumps({"library": str(lib), "settings": gen})],
                               capture_output=True, text=True, cwd=ROOT, timeout=1000,
                               env={**os.environ, "PREFECT_API_URL": info["api_url"],
                                    "PREFECT_HOME": str(state / "prefect-home")})
            wall_dist = float(d.stdout.split("WALL", 1)[1].split()[0])
            ok = "COMPLETED" in d.stdout
            timings = _agent_timings(state / "logs" / "agent-0.log")
            api_runs = json.loads(d.stdout.split("RUNS", 1)[1].strip().splitlines()[0])
            per_window = _agent_overhead(api_runs["tasks"], timings)
            created, started, ended = api_runs["flow"]
        finally:
            subprocess.run([sys.executable, str(ROOT / "deployments" / "stack.py"), "down",
                            "--state", str(state)], capture_output=True, timeout=120, cwd=ROOT)
        same = _hashes(f"sqlite:///{emb / 'stepfoley.db'}") == _hashes(
            f"sqlite:///{Path(info['data_dir']) / 'stepfoley.db'}")
        result["runs"].append({
            "embedded_wall_s": round(wall_emb, 2), "distributed_wall_s": round(wall_dist, 2),
            "throughput_ratio (embedded wall / distributed wall)": round(wall_emb / wall_dist, 3),
            "backfill_flow_run: created→start (worker poll + process start + imports)":
                round(started - created, 2),
            "backfill_flow_run: start→end": round(ended - started, 2),
            "distributed_completed": ok, "same_tracks_and_outputs": same,
            "windows_on_agent": len(timings),
            "agent_overhead_per_window_s": per_window,
        })
    result["cpus"] = os.cpu_count()
    return result


def _library(work: Path) -> Path:
    from tasks.demo_library import build_demo_library

    demo = work / "demo"
    if not demo.exists():
        build_demo_library(demo)
    lib = work / "library"
    lib.mkdir(exist_ok=True)
    for name in LIBRARY:
        if not (lib / name).exists():
            shutil.copy(demo / name, lib / name)
    return lib


def _distributed_once(lib: Path, state: Path, gen: dict[str, Any],
                      env_extra: dict[str, str]) -> dict[str, Any]:
    """One backfill of ``lib`` on a fresh stack (started with ``env_extra``), timed as the
    caller sees it; plus the server's task runs and the agent's timing lines."""
    env = {**os.environ, "STEPFOLEY_LIBRARY": str(lib), **env_extra}
    up = subprocess.run([sys.executable, str(ROOT / "deployments" / "stack.py"), "up",
                         "--state", str(state)], env=env, capture_output=True, text=True,
                        timeout=300, cwd=ROOT)
    if up.returncode != 0:
        raise SystemExit(up.stdout + up.stderr)
    info = json.loads((state / "pids.json").read_text())
    try:
        _wait_agent_ready(state)
        d = subprocess.run([sys.executable, "-c", BACKFILL_CODE,
                            json.dumps({"library": str(lib), "settings": gen})],
                           capture_output=True, text=True, cwd=ROOT, timeout=1000,
                           env={**os.environ, "PREFECT_API_URL": info["api_url"],
                                "PREFECT_HOME": str(state / "prefect-home")})
        if "WALL" not in d.stdout:
            raise SystemExit(f"backfill failed: {d.stdout[-2000:]}{d.stderr[-3000:]}")
        api_runs = json.loads(d.stdout.split("RUNS", 1)[1].strip().splitlines()[0])
        return {"wall_s": float(d.stdout.split("WALL", 1)[1].split()[0]),
                "completed": "COMPLETED" in d.stdout, "runs": api_runs,
                "timings": _agent_timings(state / "logs" / "agent-0.log"),
                "db": f"sqlite:///{Path(info['data_dir']) / 'stepfoley.db'}"}
    finally:
        subprocess.run([sys.executable, str(ROOT / "deployments" / "stack.py"), "down",
                        "--state", str(state)], capture_output=True, timeout=120, cwd=ROOT)


def _stems(url: str) -> dict[tuple, tuple[int | None, str]]:
    from sqlalchemy import select

    from sql.schema import Track
    from sql.session import make_engine, session_scope

    with session_scope(make_engine(url)) as s:
        return {(r.seed, r.order): (r.batch_size, r.stem_uri) for r in s.execute(
            select(Track.seed, Track.order, Track.batch_size, Track.stem_uri))}


def _max_diff(a: dict[tuple, tuple[int | None, str]], b: dict[tuple, tuple[int | None, str]]) -> float:
    import numpy as np
    import soundfile as sf

    if set(a) != set(b):
        return float("inf")
    return max(float(np.abs(sf.read(a[k][1], dtype="float32")[0]
                            - sf.read(b[k][1], dtype="float32")[0]).max()) for k in a)


def batching(args: argparse.Namespace) -> dict[str, Any]:
    from tasks.config import DEFAULT_BUNDLE

    work = Path(args.keep or tempfile.mkdtemp(prefix="stepfoley-bench-batching-"))
    lib = _library(work)
    gen = {"bundle": str(args.bundle or DEFAULT_BUNDLE), "steps": args.steps, "tracks": args.tracks}
    result: dict[str, Any] = {"library": list(LIBRARY), "settings": gen, "batch": args.batch,
                              "runs": [], "load_at_start": [round(x, 2) for x in os.getloadavg()]}
    for rep in range(args.repeats):
        per_b: dict[int, dict[str, Any]] = {}
        for b in args.batch:
            r = _distributed_once(lib, work / f"stack-b{b}-{rep}", gen, {"STEPFOLEY_GPU_BATCH": str(b)})
            tasks = sorted((t for t in r["runs"]["tasks"] if t[1] and t[2]), key=lambda t: t[1])
            per_b[b] = {"wall_s": round(r["wall_s"], 2), "completed": r["completed"],
                        "task_runs": len(tasks),
                        "agent_busy_s": round(tasks[-1][2] - tasks[0][1], 2),
                        "agent_generate_s": round(sum(t["generate_s"] for t in r["timings"]), 2),
                        "windows": len(r["timings"]), "stems": _stems(r["db"]),
                        "load_after": [round(x, 2) for x in os.getloadavg()]}
        base = per_b[args.batch[0]]
        for b, rec in per_b.items():
            rec["throughput_vs_first (wall)"] = round(base["wall_s"] / rec["wall_s"], 3)
            rec["agent_busy_vs_first"] = round(rec["agent_busy_s"] / base["agent_busy_s"], 3)
            rec["agent_generate_vs_first"] = round(rec["agent_generate_s"] / base["agent_generate_s"], 3)
            rec["max_abs_diff_vs_first"] = _max_diff(base["stems"], rec["stems"])
            rec["batch_sizes_recorded"] = sorted({v[0] for v in rec["stems"].values()})
        for rec in per_b.values():
            rec.pop("stems")
        result["runs"].append({str(b): rec for b, rec in per_b.items()})
        print(json.dumps(result["runs"][-1]), file=sys.stderr, flush=True)
    result["cpus"] = os.cpu_count()
    return result


def _agent_overhead(runs: list[list[float]], timings: list[dict[str, float]]) -> dict[str, Any]:
    """Agent time a window costs beyond ``generate_window``, from the server's task runs.

    Per window (one agent, one window at a time, so runs and timing lines pair in order):
    delivery = start − max(previous end, created) (queue → websocket → parameters read →
    RUNNING), in-run = (end − start) − generate_s (the engine's state round trips, the
    bundle-cache lookup, the lease, the result write). A window created after the agent went
    idle starts its clock at its creation: idle time is not overhead."""
    runs = sorted((r for r in runs if r[1] and r[2]), key=lambda r: r[1])
    timings = sorted(timings, key=lambda t: t["end"])
    if len(runs) != len(timings):
        return {"error": f"{len(runs)} task runs vs {len(timings)} timing lines"}
    delivery, in_run, prev_end = [], [], None
    for (created, start, end), t in zip(runs, timings):
        delivery.append(start - max(created, prev_end or created))
        in_run.append(end - start - t["generate_s"])
        prev_end = end
    total = [x + y for x, y in zip(delivery, in_run)]
    return {"windows": len(total), "median_s": round(statistics.median(total), 3),
            "mean_s": round(statistics.mean(total), 3), "max_s": round(max(total), 3),
            "median_delivery_s": round(statistics.median(delivery), 3),
            "median_in_run_s": round(statistics.median(in_run), 3),
            "generate_s_sum": round(sum(t["generate_s"] for t in timings), 2),
            "agent_busy_s (first start → last end)": round(runs[-1][2] - runs[0][1], 2)}


def _wait_agent_ready(state: Path, timeout: float = 180) -> None:
    log = state / "logs" / "agent-0.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and "stepfoley-agent-ready" in log.read_text(errors="replace"):
            return
        time.sleep(0.5)
    raise TimeoutError(f"GPU agent not ready: {log.read_text(errors='replace')[-2000:]}")


def _hashes(url: str) -> tuple[list, list]:
    from sqlalchemy import select

    from sql.schema import Output, Track
    from sql.session import make_engine, session_scope

    with session_scope(make_engine(url)) as s:
        tracks = sorted(s.execute(select(Track.order, Track.seed, Track.stem_sha256)).all())
        outputs = sorted(s.execute(select(Output.sha256)).scalars())
    return [tuple(t) for t in tracks], outputs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("candidates")
    c.add_argument("--n", type=int, default=8)
    c.add_argument("--bundle")
    c.add_argument("--json", type=Path)
    b = sub.add_parser("backfill")
    b.add_argument("--steps", type=int, default=3)
    b.add_argument("--tracks", type=int, default=2)
    b.add_argument("--bundle")
    b.add_argument("--repeats", type=int, default=1)
    b.add_argument("--keep", type=Path)
    b.add_argument("--json", type=Path)
    g = sub.add_parser("batching")
    g.add_argument("--batch", type=int, nargs="+", default=[1, 2, 4])
    g.add_argument("--steps", type=int, default=3)
    g.add_argument("--tracks", type=int, default=2)
    g.add_argument("--bundle")
    g.add_argument("--repeats", type=int, default=1)
    g.add_argument("--keep", type=Path)
    g.add_argument("--json", type=Path)
    args = ap.parse_args()
    result = {"candidates": candidates, "backfill": backfill, "batching": batching}[args.cmd](args)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
