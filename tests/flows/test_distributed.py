"""Distributed integration: a real Prefect server (PostgreSQL-backed) on 127.0.0.1, a `cpu`
process worker and a warm GPU agent (deployments/stack.py), deployments from
deployments/prefect.yaml, a backfill started with run_deployment — same provenance rows and
output hashes as the embedded run, every window served by the one agent process from memory."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from sql.schema import Output, SceneWindow, Track
from sql.session import make_engine, session_scope
from tests.flows.conftest import make_library, stepfoley

REPO = Path(__file__).resolve().parents[2]
NAMES = ["three-shots.mp4", "with-original.mp4"]
PROMPTS = {"three-shots.mp4": ["a dog barks", "rain falls"], "with-original.mp4": ["footsteps", "wind"]}


def _tracks(url: str) -> list[tuple]:
    with session_scope(make_engine(url)) as s:
        return sorted(s.execute(select(Track.order, Track.version, Track.seed, Track.stem_sha256,
                                       Track.prompt_text)).all())


def _outputs(url: str) -> list[str]:
    with session_scope(make_engine(url)) as s:
        return sorted(hashlib.sha256(Path(u).read_bytes()).hexdigest()
                      for u in s.execute(select(Output.uri)).scalars())


@pytest.mark.heavy
@pytest.mark.server
@pytest.mark.postgres
@pytest.mark.timeout(900)
def test_backfill_through_deployments_matches_embedded(tmp_path: Path, tiny_bundle: Path,
                                                       demo_footage: Path) -> None:
    lib = make_library(demo_footage, tmp_path / "lib", NAMES, PROMPTS)
    gen = {"bundle": str(tiny_bundle), "steps": 3, "tracks": 2}
    embedded = tmp_path / "embedded"
    proc = stepfoley(["--data-dir", str(embedded), "run", str(lib), "--bundle", str(tiny_bundle),
                      "--steps", "3", "--tracks", "2"])
    assert proc.returncode == 0, proc.stdout + proc.stderr

    state = tmp_path / "stack"
    # the agent preloads the run's bundle (as an installation sets STEPFOLEY_BUNDLE)
    env = {**os.environ, "STEPFOLEY_LIBRARY": str(lib), "STEPFOLEY_BUNDLE": str(tiny_bundle)}
    up = subprocess.run([sys.executable, str(REPO / "deployments" / "stack.py"), "up", "--state",
                         str(state), "--postgres"], env=env, capture_output=True, text=True,
                        timeout=300, cwd=REPO)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        info = json.loads((state / "pids.json").read_text())
        script = (
            "import json,sys\n"
            "from prefect.deployments import run_deployment\n"
            "fr = run_deployment('backfill-library/on-demand', parameters=json.loads(sys.argv[1]),"
            " timeout=600)\n"
            "print(fr.state.type.value)\n"
            "from prefect.client.orchestration import get_client\n"
            "from prefect.client.schemas.filters import FlowRunFilter, FlowFilter, FlowFilterName\n"
            "from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName\n"
            "with get_client(sync_client=True) as c:\n"
            "    runs = c.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=['generate-window'])))\n"
            "    print('FLOW_RUNS_PER_WINDOW', len(runs))\n"
            "    trs = c.read_task_runs(task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_='window ')))\n"
            "    print('GPU_TASK_RUNS', sorted({(t.state.type.value, t.flow_run_id is not None) for t in trs}), len(trs))\n")
        params = {"library": str(lib), "settings": gen}
        run = subprocess.run([sys.executable, "-c", script, json.dumps(params)], capture_output=True,
                             text=True, timeout=700, cwd=REPO,
                             env={**os.environ, "PREFECT_API_URL": info["api_url"],
                                  "PREFECT_HOME": str(state / "prefect-home")})
        assert run.returncode == 0 and "COMPLETED" in run.stdout, (
            run.stdout + run.stderr + (state / "logs" / "worker-cpu.log").read_text()[-3000:]
            + (state / "logs" / "worker-gpu.log").read_text()[-3000:])
        url = info["db_url"]
        with session_scope(make_engine(url)) as s:
            from sql.repository import asset_status_rows, list_failures
            facts = [(r["status"], r["error"]) for r in asset_status_rows(s)] + [
                (f["stage"], f["error_class"], f["message"][:300]) for f in list_failures(s)]
        assert _tracks(url) == _tracks(f"sqlite:///{embedded / 'stepfoley.db'}"), facts
        assert _outputs(url) == _outputs(f"sqlite:///{embedded / 'stepfoley.db'}")
        # every window ran as a task run of its asset's flow run, on the one warm agent process
        agent_log = (state / "logs" / "agent-0.log").read_text()
        timings = [json.loads(line.split("stepfoley-window-timing ", 1)[1])
                   for line in agent_log.splitlines() if "stepfoley-window-timing " in line]
        with session_scope(make_engine(url)) as s:
            windows = s.execute(select(func.count(SceneWindow.id))).scalar_one()
            devices = set(s.execute(select(Track.device)).scalars())
        assert len(timings) == windows and windows >= 5, agent_log[-3000:]
        assert devices == {f"cpu@{socket.gethostname()}"}
        assert "FLOW_RUNS_PER_WINDOW 0" in run.stdout, run.stdout
        assert f"GPU_TASK_RUNS [('COMPLETED', True)] {windows}" in run.stdout, run.stdout
    finally:
        subprocess.run([sys.executable, str(REPO / "deployments" / "stack.py"), "down", "--state",
                        str(state)], capture_output=True, timeout=120, cwd=REPO)
