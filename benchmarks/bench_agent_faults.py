"""A backfill through two warm GPU agents with faults injected, against a clean run (issue #18 §3).

    .venv/bin/python benchmarks/bench_agent_faults.py [--assets 200] [--steps 3] [--tracks 1]
        [--ttl 10] [--kill-at 0.25] [--restart-at 0.55] [--only clean|faulted] [--keep DIR]
        [--json FILE]

A library of ``--assets`` short videos (benchmarks/fault_audit.py: 1–2 s each, one window
each), the shipped bundle, PostgreSQL for the provenance DB and the Prefect server, two warm
GPU agents, one `cpu` process worker (4 assets in flight), all started by
``deployments/stack.py up --postgres --gpu-agents 2``; the backfill is
``backfill-library/on-demand`` started with ``run_deployment``.

(a) clean: the library end to end, nothing injected.
(b) faulted, in a fresh stack (its own data dir and databases):
    * once a quarter of the assets are done (``--kill-at``): wait until agent-0 holds a window
      (a lease file with its pid), ``kill -9`` it, restart it 3 s later
      (``stack.py restart agent-0``);
    * once ``--restart-at`` of the assets are done: ``stack.py restart server`` (SIGTERM to
      the real ``prefect server start`` process, start it again on the same port and
      database, until /api/health answers).

Measured (epoch clocks, one process): kill → the caller re-dispatches the lost window (it
removes the dead agent's lease) → the window is done again (an agent's timing line);
server stop → healthy again → the first window done / the first asset done after it; the
longest stretch without any window ending; wall time (flow run created → the run row
finished) against the clean run; machine load (os.getloadavg) before and after.
Checked (fault_audit.audit / compare): every asset done once, no duplicate rows, no temp or
orphan files, every recorded file's sha256, stems/mixes/outputs byte-identical to the clean run.
Prints JSON and a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import fault_audit as fa  # noqa: E402  (after the path: run as a script)

START = ("import json,sys\n"
         "from prefect.deployments import run_deployment\n"
         "fr = run_deployment('backfill-library/on-demand', parameters=json.loads(sys.argv[1]),"
         " timeout=0)\n"
         "print('FLOW_RUN', fr.id)\n")

PREFECT_FACTS = ("import json,collections\n"
                 "from prefect.client.orchestration import get_client\n"
                 "from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName\n"
                 "def every(read):\n"
                 "    out, off = [], 0\n"
                 "    while True:\n"
                 "        page = read(limit=200, offset=off)\n"
                 "        out += page; off += len(page)\n"
                 "        if len(page) < 200: return out\n"
                 "with get_client(sync_client=True) as c:\n"
                 "    trs = every(c.read_task_runs)\n"
                 "    frs = every(c.read_flow_runs)\n"
                 "win = [t for t in trs if t.name.startswith('gpu-window') or t.name.startswith('window')]\n"
                 "assets = collections.Counter((f.name, f.state.type.value) for f in frs"
                 " if f.name.startswith('asset '))\n"
                 "print('FACTS', json.dumps({\n"
                 " 'window_task_runs': dict(collections.Counter(t.state.type.value for t in win)),\n"
                 " 'crashed': [[t.state.timestamp.timestamp(), t.state.message] for t in win"
                 "  if t.state.type.value == 'CRASHED'],\n"
                 " 'asset_flow_runs': dict(collections.Counter(s for (_, s) in assets)),\n"
                 " 'asset_flow_runs_per_asset': dict(collections.Counter(collections.Counter("
                 "  n for (n, s) in assets.elements() if s == 'COMPLETED').values())),\n"
                 " 'flow_runs': dict(collections.Counter(f.state.type.value for f in frs))}))\n")


_ENGINES: dict[str, Any] = {}


def _engine(db_url: str) -> Any:
    """One engine (one small pool) per database for the whole benchmark."""
    from sql.session import make_engine

    if db_url not in _ENGINES:
        _ENGINES[db_url] = make_engine(db_url)
    return _ENGINES[db_url]


def _done_count(db_url: str) -> tuple[int, str | None]:
    from sqlalchemy import func, select

    from sql.schema import Asset, Run
    from sql.session import session_scope

    try:
        with session_scope(_engine(db_url)) as s:
            done = s.execute(select(func.count(Asset.id)).where(Asset.status == "done")).scalar_one()
            run = s.execute(select(Run.status).order_by(Run.id)).scalars().first()
        return int(done), run
    except Exception:  # tables not created yet by the first flow run
        return 0, None


def run_once(work: Path, name: str, lib: Path, n: int, gen: dict[str, Any], ttl: float,
             faults: bool, kill_at: float, restart_at: float) -> tuple[dict[str, Any], dict[str, Any]]:
    state = work / name
    env = {**os.environ, "STEPFOLEY_LIBRARY": str(lib), "STEPFOLEY_WINDOW_LEASE_TTL_S": str(ttl)}
    load_before = os.getloadavg()
    try:
        fa.stack("up", "--state", str(state), "--postgres", "--gpu-agents", "2", env=env)
    except BaseException:
        fa.stack("down", "--state", str(state), timeout=300)  # what did start
        raise
    info = json.loads((state / "pids.json").read_text())
    data, db_url, logs = Path(info["data_dir"]), info["db_url"], state / "logs"
    api_env = {**os.environ, "PREFECT_API_URL": info["api_url"],
               "PREFECT_HOME": str(state / "prefect-home")}
    out: dict[str, Any] = {"name": name}
    samples: list[tuple[float, int]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.5):
            samples.append((time.time(), _done_count(db_url)[0]))

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        t0 = time.time()
        p = subprocess.run([sys.executable, "-c", START,
                            json.dumps({"library": str(lib), "settings": gen})],
                           capture_output=True, text=True, cwd=ROOT, env=api_env, timeout=300)
        if "FLOW_RUN" not in p.stdout:
            raise SystemExit(f"could not start the backfill: {p.stdout[-2000:]}{p.stderr[-3000:]}")
        sampler.start()
        if faults:
            out["kill"] = _kill_agent(state, info, data, db_url, n, kill_at)
            out["server_restart"] = _restart_server(state, data, db_url, n, restart_at)
        run_status = fa.wait_for(lambda: (lambda d, r: r if r and r != "running" else None)(
            *_done_count(db_url)), timeout=7200, step=0.5, what="the backfill's run row")
        t_end = time.time()
        out.update({"wall_s": round(t_end - t0, 1), "run_status": run_status})
        facts = subprocess.run([sys.executable, "-c", PREFECT_FACTS], capture_output=True,
                               text=True, cwd=ROOT, env=api_env, timeout=300)
        out["prefect"] = (json.loads(facts.stdout.split("FACTS", 1)[1]) if "FACTS" in facts.stdout
                          else {"error": facts.stderr[-1500:]})
        timings = fa.agent_timings(logs)
        out["windows_served"] = {log: sum(1 for t in timings if t["log"] == log)
                                 for log in sorted({t["log"] for t in timings})}
        if faults:
            _recovery(out, timings)
        snap = fa.snapshot(db_url)
        out["audit"] = fa.audit(snap, data, n)
        out["data_dir"] = str(data)
    finally:
        stop.set()
        if sampler.is_alive():
            sampler.join(timeout=5)
        engine = _ENGINES.pop(db_url, None)
        if engine is not None:
            engine.dispose()
        fa.stack("down", "--state", str(state), timeout=300)
    out["load_before_after"] = [round(x, 2) for x in (*load_before, *os.getloadavg())]
    out["progress"] = samples[:: max(1, len(samples) // 60)]
    return out, snap


def _kill_agent(state: Path, info: dict[str, Any], data: Path, db_url: str, n: int,
                kill_at: float) -> dict[str, Any]:
    fa.wait_for(lambda: _done_count(db_url)[0] >= kill_at * n, 7200, 0.5, "kill point")
    pid = info["agent-0"]
    leases = data / "leases"

    def held() -> tuple[Path, dict[str, Any]] | None:
        for f in leases.glob("*.json") if leases.is_dir() else ():
            try:
                rec = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
            if str(rec.get("owner", "")).endswith(f":{pid}"):
                return f, rec
        return None

    lease, rec = fa.wait_for(held, 600, 0.02, "agent-0 holding a window")
    os.kill(pid, signal.SIGKILL)
    t_kill = time.time()
    redispatched: dict[str, float] = {}

    def watch() -> None:  # the caller removes the dead agent's lease when it dispatches again
        while lease.exists():
            time.sleep(0.05)
        redispatched["t"] = time.time()

    w = threading.Thread(target=watch, daemon=True)
    w.start()
    time.sleep(3.0)
    t_restart = time.time()
    fa.stack("restart", "agent-0", "--state", str(state))
    w.join(timeout=600)
    return {"t_kill": t_kill, "window_id": rec.get("window_id"), "window": rec.get("window"),
            "lease": lease.name, "agent_restart_s": round(time.time() - t_restart, 1),
            "t_redispatched": redispatched.get("t")}


def _restart_server(state: Path, data: Path, db_url: str, n: int,
                    restart_at: float) -> dict[str, Any]:
    fa.wait_for(lambda: _done_count(db_url)[0] >= restart_at * n, 7200, 0.5, "restart point")
    # an agent mid-window (while windows are queued behind it, if the agents are the bottleneck)
    fa.wait_for(lambda: any((data / "leases").glob("*.json")), 600, 0.02, "an agent busy")
    done_before = _done_count(db_url)[0]
    t_stop = time.time()
    res = json.loads(fa.stack("restart", "server", "--state", str(state)).strip().splitlines()[-1])
    return {"t_stop": t_stop, "t_up": time.time(), "stop_s": res["stop_s"],
            "start_s": res["start_s"], "done_at_stop": done_before}


def _recovery(out: dict[str, Any], timings: list[dict[str, Any]]) -> None:
    k, r = out["kill"], out["server_restart"]
    redo = sorted(t["end"] for t in timings
                  if t.get("window_id") == k["window_id"] and t["end"] > k["t_kill"])
    k["kill_to_redispatch_s"] = (round(k["t_redispatched"] - k["t_kill"], 1)
                                 if k.get("t_redispatched") else None)
    k["kill_to_window_done_s"] = round(redo[0] - k["t_kill"], 1) if redo else None
    ends = sorted(t["end"] for t in timings)
    after = [e for e in ends if e > r["t_up"]]
    before = [e for e in ends if e <= r["t_stop"]]
    r["downtime_s"] = round(r["t_up"] - r["t_stop"], 1)
    r["up_to_first_window_done_s"] = round(after[0] - r["t_up"], 1) if after else None
    around = [e for e in ends if e > r["t_stop"] - 60]
    r["longest_gap_between_windows_s"] = round(max(
        (b - a for a, b in zip(around, around[1:])), default=0.0), 1)
    r["windows_done_during_outage"] = sum(1 for e in ends if r["t_stop"] < e <= r["t_up"])
    r["last_window_before_stop_s"] = round(r["t_stop"] - before[-1], 1) if before else None


def _table(res: dict[str, Any]) -> str:
    c, f = res.get("clean", {}), res.get("faulted", {})
    k, r = f.get("kill", {}), f.get("server_restart", {})
    rows = [
        ("assets / windows served per agent", f"{res['assets']} / {c.get('windows_served')}",
         f"{res['assets']} / {f.get('windows_served')}"),
        ("wall (flow run created → run row finished)", f"{c.get('wall_s')} s", f"{f.get('wall_s')} s"),
        ("wall faulted / clean", "", str(round(f["wall_s"] / c["wall_s"], 2))
         if c.get("wall_s") and f.get("wall_s") else ""),
        ("kill -9 → lost window re-dispatched", "", f"{k.get('kill_to_redispatch_s')} s"),
        ("kill -9 → lost window done again", "", f"{k.get('kill_to_window_done_s')} s"),
        ("server stop → healthy again", "", f"{r.get('downtime_s')} s"),
        ("server healthy → first window done", "", f"{r.get('up_to_first_window_done_s')} s"),
        ("longest gap between two windows ending", "", f"{r.get('longest_gap_between_windows_s')} s"),
        ("audit problems", str(len(c.get("audit", {}).get("problems", []))),
         str(len(f.get("audit", {}).get("problems", [])))),
        ("differences from the clean run (stems, mixes, outputs)", "",
         str(len(res["differences"])) if "differences" in res else "n/a"),
        ("files differing from the clean run's data dir", "",
         str(len(res["file_differences"])) if "file_differences" in res else "n/a"),
        ("assets whose process-asset flow run completed exactly once",
         str(c.get("prefect", {}).get("asset_flow_runs_per_asset")),
         str(f.get("prefect", {}).get("asset_flow_runs_per_asset"))),
        ("window task runs by state", str(c.get("prefect", {}).get("window_task_runs")),
         str(f.get("prefect", {}).get("window_task_runs"))),
        ("load avg 1/5/15 min before → after", str(c.get("load_before_after")),
         str(f.get("load_before_after"))),
    ]
    lines = ["| | clean | faulted |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {d} |" for a, b, d in rows]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--assets", type=int, default=200)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--tracks", type=int, default=1)
    ap.add_argument("--ttl", type=float, default=10.0, help="window lease TTL (s)")
    ap.add_argument("--kill-at", type=float, default=0.25)
    ap.add_argument("--restart-at", type=float, default=0.55)
    ap.add_argument("--only", choices=("clean", "faulted"))
    ap.add_argument("--reference-data", type=Path,
                    help="with --only faulted: a clean run's data dir to compare files with")
    ap.add_argument("--keep", type=Path, help="work directory (kept; the library is reused)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    from tasks.config import DEFAULT_BUNDLE

    work = Path(args.keep or tempfile.mkdtemp(prefix="stepfoley-bench-faults-")).resolve()
    lib = fa.build_library(work / f"library-{args.assets}", args.assets)
    gen = {"bundle": str(DEFAULT_BUNDLE), "steps": args.steps, "tracks": args.tracks}
    res: dict[str, Any] = {"assets": args.assets, "settings": gen, "lease_ttl_s": args.ttl,
                           "cpus": os.cpu_count(), "work": str(work)}
    snaps = {}
    for name, faulted in (("clean", False), ("faulted", True)):
        if args.only and args.only != name:
            continue
        tag = f"{name}-{int(time.time())}"
        res[name], snaps[name] = run_once(work, tag, lib, args.assets, gen, args.ttl, faulted,
                                          args.kill_at, args.restart_at)
        print(json.dumps({name: res[name]}, default=str)[:4000], file=sys.stderr, flush=True)
    if len(snaps) == 2:
        res["differences"] = fa.compare(snaps["faulted"], snaps["clean"])
        res["file_differences"] = fa.compare_trees(
            fa.tree_hashes(Path(res["faulted"]["data_dir"])),
            fa.tree_hashes(Path(res["clean"]["data_dir"])))
    elif args.reference_data and "faulted" in res:  # a clean run kept from an earlier invocation
        res["file_differences"] = fa.compare_trees(
            fa.tree_hashes(Path(res["faulted"]["data_dir"])), fa.tree_hashes(args.reference_data))
    print(json.dumps(res, indent=2, default=str))
    print(_table(res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
