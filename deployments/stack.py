#!/usr/bin/env python3
"""Start and stop a distributed stepfoley stack on this host, all on 127.0.0.1.

    python deployments/stack.py up   [--state DIR] [--postgres | --db-url URL] [--port 4200]
    python deployments/stack.py restart NAME [--state DIR] [--kill]
    python deployments/stack.py down [--state DIR]

`up` (idempotent: a running stack is left alone):
  1. optionally starts a throwaway PostgreSQL cluster (initdb in STATE/pg) for both the
     Prefect server and the provenance database;
  2. starts `prefect server start` on 127.0.0.1 and waits until /api/health answers;
  3. creates the `cpu` and `gpu` process work pools, a pool concurrency limit on `gpu`
     (one run per GPU worker) and a `gpu` tag concurrency limit (GPU memory guard);
  4. registers every deployment of deployments/prefect.yaml;
  5. starts the warm GPU agents (`--gpu-agents`, default 1: `python -m flows.gpu_agent`, one
     per device, each loads the bundle once and serves windows from memory) and waits until
     each has its model loaded; then one `cpu` process worker (backfills, uploads, assets:
     windows go to the agents, `STEPFOLEY_GPU_DEPLOYMENT=agents`, two assets in flight per
     agent) and one `gpu` process worker (operator regenerations), each with its own
     STEPFOLEY_* settings.
`restart NAME` (``server``, ``agent-N``, ``worker-cpu``, ``worker-gpu``) stops that process
(SIGTERM, or SIGKILL with ``--kill``) and starts it again with the command and environment it
was first started with (kept in STATE/pids.json under ``launch``), on the same port, appending
to its log; it returns once the server answers again / the agent has its model loaded. It is
how an operator (and the fault benchmark, benchmarks/bench_agent_faults.py) restarts one part
of a running stack.
`down` stops workers and agents first (they hang if the server goes first), then the server,
then PostgreSQL. Process ids live in STATE/pids.json. Uses only the venv's `prefect` CLI.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


def base_env(state: Path, api_url: str, extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "PREFECT_HOME": str(state / "prefect-home"),
        "PREFECT_API_URL": api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "HF_HUB_OFFLINE": "1",
        "STEPFOLEY_REPO": str(REPO),
        "STEPFOLEY_TIMEZONE": env.get("STEPFOLEY_TIMEZONE", "UTC"),
        "STEPFOLEY_LIBRARY": env.get("STEPFOLEY_LIBRARY", str(state / "library")),
        "STEPFOLEY_INBOX": env.get("STEPFOLEY_INBOX", str(state / "inbox")),
        "PREFECT_SERVER_TASKS_TAG_CONCURRENCY_SLOT_WAIT_SECONDS": "2",
        "PREFECT_SERVER_CONCURRENCY_MAXIMUM_CONCURRENCY_SLOT_WAIT_SECONDS": "2",
    })
    env.update(extra)
    return env


def wait_agent(log: Path, pid: int, timeout: float) -> None:
    """Until the agent prints its ready line (model loaded); its exit is an error."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if "stepfoley-agent-ready" in text:
            return
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            raise SystemExit(f"GPU agent exited before it was ready: {text[-2000:]}")
        time.sleep(0.3)
    raise TimeoutError(f"GPU agent not ready within {timeout:.0f} s: {log}")


def launch(spec: dict[str, object], append: bool = False) -> subprocess.Popen:
    """Start one stack process from its launch spec ({"cmd", "env" (over os.environ), "log"})."""
    env = {**os.environ, **spec["env"]}  # type: ignore[dict-item]
    return subprocess.Popen(list(spec["cmd"]), env=env, cwd=REPO,  # type: ignore[call-overload]
                            stdout=open(str(spec["log"]), "ab" if append else "wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def env_delta(env: dict[str, str]) -> dict[str, str]:
    """What ``env`` sets beyond this process's environment (what a restart must set again)."""
    return {k: v for k, v in env.items() if os.environ.get(k) != v}


def pg_bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not found:
        raise SystemExit("PostgreSQL binaries not found (apt-get install postgresql)")
    return str(found[-1])


def as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def start_postgres(state: Path) -> tuple[str, int]:
    # The server runs as `postgres`, which must be able to reach its directories: keep the
    # cluster in its own world-traversable temp dir rather than under a private state dir.
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="stepfoley-stack-pg-"))
    os.chmod(root, 0o755)
    data, sock = root / "data", root / "sock"
    sock.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(sock, "postgres", "postgres")
    port = free_port()
    if not data.exists():
        subprocess.run(as_postgres([pg_bin("initdb"), "-D", str(data), "-U", "postgres",
                                    "--auth=trust", "-E", "UTF8"]), check=True,
                       capture_output=True)
    subprocess.run(as_postgres([pg_bin("pg_ctl"), "-D", str(data), "-w", "-l",
                                str(root / "log"), "-o",
                                f"-h 127.0.0.1 -p {port} -k {sock}", "start"]), check=True,
                   capture_output=True)
    for db in ("prefect", "stepfoley"):
        subprocess.run(as_postgres([pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(port),
                                    "-U", "postgres", db]), capture_output=True)
    return str(data), port


def up(args: argparse.Namespace) -> None:
    state = Path(args.state).resolve()
    state.mkdir(parents=True, exist_ok=True)
    pid_file = state / "pids.json"
    if pid_file.exists():
        print(f"stack already up (see {pid_file}); run `down` first")
        return
    pids: dict[str, object] = {}
    db_url = args.db_url
    server_env: dict[str, str] = {}
    if args.postgres:
        pgdata, port = start_postgres(state)
        pids["postgres"] = pgdata
        db_url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/stepfoley"
        server_env["PREFECT_API_DATABASE_CONNECTION_URL"] = (
            f"postgresql+asyncpg://postgres@127.0.0.1:{port}/prefect")
    api_port = args.port or free_port()
    api_url = f"http://127.0.0.1:{api_port}/api"
    env = base_env(state, api_url, server_env)
    logs = state / "logs"
    logs.mkdir(exist_ok=True)
    specs: dict[str, dict[str, object]] = {}
    specs["server"] = {"cmd": [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1",
                               "--port", str(api_port)],
                       "env": env_delta(env), "log": str(logs / "server.log")}
    pids["server"] = launch(specs["server"]).pid
    pid_file.write_text(json.dumps(pids))
    wait_http(f"{api_url}/health", 120)

    def prefect(*cmd: str, check: bool = True) -> None:
        subprocess.run([str(BIN / "prefect"), *cmd], env=env, cwd=REPO, check=check,
                       capture_output=True)

    prefect("work-pool", "create", "cpu", "--type", "process", "--overwrite")
    prefect("work-pool", "create", "gpu", "--type", "process", "--overwrite")
    prefect("work-pool", "set-concurrency-limit", "gpu", str(args.gpu_workers))
    prefect("concurrency-limit", "create", "gpu", str(args.gpu_workers), check=False)
    subprocess.run([str(BIN / "prefect"), "--no-prompt", "deploy", "--all", "--prefect-file",
                    "deployments/prefect.yaml"], env=env, cwd=REPO, check=True,
                   stdout=open(logs / "deploy.log", "wb"), stderr=subprocess.STDOUT)
    data_dir = Path(args.data_dir or state / "data").resolve()
    common = {"STEPFOLEY_DATA_DIR": str(data_dir)}
    if db_url:
        common["STEPFOLEY_DATABASE_URL"] = db_url
    # Deferred windows' parameters and results go through Prefect's local result storage: on
    # the shared data dir, so a caller and an agent on different hosts both reach it.
    common["PREFECT_LOCAL_STORAGE_PATH"] = str(data_dir / "prefect-storage")
    device = os.environ.get("STEPFOLEY_GPU_DEVICE", "cpu")
    for i in range(args.gpu_agents):
        agent_env = {**env, **common, "STEPFOLEY_DEVICE": device if device == "cpu" or args.gpu_agents == 1
                     else f"{device}:{i}"}
        specs[f"agent-{i}"] = {"cmd": [sys.executable, "-m", "flows.gpu_agent", "--limit", "1"],
                               "env": env_delta(agent_env), "log": str(logs / f"agent-{i}.log")}
        pids[f"agent-{i}"] = launch(specs[f"agent-{i}"]).pid
    pid_file.write_text(json.dumps(pids))
    for i in range(args.gpu_agents):
        wait_agent(logs / f"agent-{i}.log", pids[f"agent-{i}"], 300)
    workers = {
        # Poll every 2 s, not Prefect's 10: an on-demand backfill otherwise waits 5 s on average
        # before its flow run even starts (one cheap API call per second per worker).
        "cpu": {**common, "STEPFOLEY_GPU_DEPLOYMENT": "agents",
                "STEPFOLEY_CONCURRENCY": str(2 * max(1, args.gpu_agents)),
                "PREFECT_WORKER_QUERY_SECONDS": "2"},
        "gpu": {**common, "STEPFOLEY_DEVICE": os.environ.get("STEPFOLEY_GPU_DEVICE", "cpu")},
    }
    for pool, extra in workers.items():
        specs[f"worker-{pool}"] = {
            "cmd": [str(BIN / "prefect"), "worker", "start", "--pool", pool, "--type", "process",
                    "--name", f"{pool}-{socket.gethostname()}",
                    "--limit", "1" if pool == "gpu" else str(args.cpu_slots)],
            "env": env_delta({**env, **extra}), "log": str(logs / f"worker-{pool}.log")}
        pids[f"worker-{pool}"] = launch(specs[f"worker-{pool}"]).pid
    pids.update({"api_url": api_url, "db_url": db_url or "", "data_dir": str(data_dir),
                 "launch": specs})
    pid_file.write_text(json.dumps(pids, indent=2))
    print(json.dumps(pids, indent=2))


def _kill(pid: int, timeout: float = 20) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def restart(args: argparse.Namespace) -> None:
    state = Path(args.state).resolve()
    pid_file = state / "pids.json"
    pids = json.loads(pid_file.read_text())
    spec = pids.get("launch", {}).get(args.name)
    if spec is None:
        raise SystemExit(f"no stack process {args.name!r} (have: {', '.join(pids.get('launch', {}))})")
    t0 = time.monotonic()
    if args.kill:
        try:
            os.killpg(pids[args.name], signal.SIGKILL)
        except ProcessLookupError:
            pass
    _kill(pids[args.name])
    stopped = time.monotonic()
    log = Path(str(spec["log"]))
    ready_before = log.read_text(errors="replace").count("stepfoley-agent-ready") if log.exists() else 0
    proc = launch(spec, append=True)
    pids[args.name] = proc.pid
    pid_file.write_text(json.dumps(pids, indent=2))
    if args.name == "server":
        wait_http(f"{pids['api_url']}/health", 180)
    elif args.name.startswith("agent-"):
        deadline = time.monotonic() + 300
        while log.read_text(errors="replace").count("stepfoley-agent-ready") <= ready_before:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{args.name} did not come back: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.3)
    print(json.dumps({"name": args.name, "pid": proc.pid, "stop_s": round(stopped - t0, 2),
                      "start_s": round(time.monotonic() - stopped, 2)}))


def down(args: argparse.Namespace) -> None:
    state = Path(args.state).resolve()
    pid_file = state / "pids.json"
    if not pid_file.exists():
        print("no stack to stop")
        return
    pids = json.loads(pid_file.read_text())
    agents = sorted(k for k in pids if k.startswith("agent-"))
    for key in ("worker-cpu", "worker-gpu", *agents, "server"):
        if isinstance(pids.get(key), int):
            _kill(pids[key])
    if pids.get("postgres"):
        subprocess.run(as_postgres([pg_bin("pg_ctl"), "-D", pids["postgres"], "-m", "fast",
                                    "-w", "stop"]), capture_output=True)
        shutil.rmtree(Path(pids["postgres"]).parent, ignore_errors=True)
    pid_file.unlink()
    print("stack stopped")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    pu = sub.add_parser("up")
    pu.add_argument("--state", default=str(REPO / ".stack"))
    pu.add_argument("--postgres", action="store_true", help="throwaway PostgreSQL for both DBs")
    pu.add_argument("--db-url", help="provenance database URL (default: SQLite in the data dir)")
    pu.add_argument("--data-dir")
    pu.add_argument("--port", type=int, default=0)
    pu.add_argument("--gpu-workers", type=int, default=1)
    pu.add_argument("--gpu-agents", type=int, default=1,
                    help="warm GPU agents (one per device; STEPFOLEY_GPU_DEVICE=cuda → cuda:i)")
    pu.add_argument("--cpu-slots", type=int, default=2)
    pr = sub.add_parser("restart")
    pr.add_argument("name", help="server, agent-N, worker-cpu or worker-gpu")
    pr.add_argument("--state", default=str(REPO / ".stack"))
    pr.add_argument("--kill", action="store_true", help="SIGKILL instead of SIGTERM")
    pd = sub.add_parser("down")
    pd.add_argument("--state", default=str(REPO / ".stack"))
    args = p.parse_args()
    {"up": up, "restart": restart, "down": down}[args.cmd](args)


if __name__ == "__main__":
    main()
