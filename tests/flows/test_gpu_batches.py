"""Windows batched on the warm GPU agents (issue #18 §2): process-asset forms batches of
``STEPFOLEY_GPU_BATCH`` windows of one asset (flows/generate_window.py ``window_batches``), an
agent integrates their track k together (tasks/generate.py).

The heavy test runs it for real: a Prefect server, a `cpu` process worker and a warm agent
(deployments/stack.py), B = 2, the tiny bundle, FoleyWorld footage; every window gets the
tracks of the embedded unbatched run (same seeds, samples within batched.py's tolerance), one
task run per batch, a rerun is a no-op, and a batch with one unreadable window fails that
window, named, while the agent keeps serving.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from sqlalchemy import select

from flows.generate_window import window_batches
from sql.schema import SceneWindow, Track
from sql.session import make_engine, session_scope
from tasks import asset_stages
from tasks.config import load_settings
from tests.flows.conftest import make_library, stack_diagnosis, start_spare_agent, stepfoley

REPO = Path(__file__).resolve().parents[2]


def _job(scene: int, window: int, start: float, end: float) -> dict[str, Any]:
    return {"scene_index": scene, "window_index": window, "start_s": start, "end_s": end}


def test_batches_are_windows_in_order_of_one_length() -> None:
    jobs = [_job(1, 0, 8.0, 16.0), _job(0, 0, 0.0, 8.0), _job(0, 1, 7.0, 12.0),
            _job(1, 1, 15.0, 23.0), _job(2, 0, 23.0, 31.0), _job(2, 1, 30.0, 35.0)]
    names = [[f"{j['scene_index']}.{j['window_index']}" for j in b] for b in window_batches(jobs, 2)]
    # 8-s windows in pairs, in index order; the two 5-s ones together
    assert names == [["0.0", "1.0"], ["0.1", "2.1"], ["1.1", "2.0"]]
    assert [len(b) for b in window_batches(jobs, 1)] == [1] * 6
    assert [len(b) for b in window_batches(jobs, 4)] == [4, 2]
    assert window_batches(list(reversed(jobs)), 2) == window_batches(jobs, 2)  # deterministic


def _tracks(url: str) -> list[tuple]:
    with session_scope(make_engine(url)) as s:
        return sorted(s.execute(select(SceneWindow.shot_index, SceneWindow.window_index, Track.order,
                                       Track.version, Track.seed, Track.id, Track.stem_uri,
                                       Track.finished_at, Track.batch_size)
                                .join(SceneWindow, SceneWindow.id == Track.window_id)).all())


def _backfill(info: dict, state: Path, params: dict) -> str:
    script = ("import json,sys\n"
              "from prefect.deployments import run_deployment\n"
              "fr = run_deployment('backfill-library/on-demand', parameters=json.loads(sys.argv[1]),"
              " timeout=600, poll_interval=0.5)\n"
              "print('STATE', fr.state.type.value)\n"
              "from prefect.client.orchestration import get_client\n"
              "from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName\n"
              "with get_client(sync_client=True) as c:\n"
              "    trs = c.read_task_runs(task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_='window ')))\n"
              "    print('TASK_RUNS', json.dumps(sorted(t.name for t in trs)))\n")
    p = subprocess.run([sys.executable, "-c", script, json.dumps(params)], cwd=REPO, text=True,
                       capture_output=True, timeout=700,
                       env={**os.environ, "PREFECT_API_URL": info["api_url"],
                            "PREFECT_HOME": str(state / "prefect-home")})
    assert "STATE COMPLETED" in p.stdout, p.stdout[-3000:] + p.stderr[-3000:]
    return p.stdout


# A batch deferred by hand (as process-asset does) with one window whose file is gone.
DEFER = """
import json, sys, uuid
from tasks.prefect_tasks import gpu_window_task
from tasks.gpu_agent import batch_label
jobs, settings = json.loads(sys.argv[1]), json.loads(sys.argv[2])
fut = gpu_window_task.delay(jobs, settings, [uuid.uuid4().hex for _ in jobs], 30.0, batch_label(jobs))
fut.wait(timeout=300)
print('END', json.dumps({'type': fut.state.type.value, 'message': fut.state.message}))
"""


@pytest.mark.heavy
@pytest.mark.server
@pytest.mark.timeout(1200)
def test_batches_of_two_on_an_agent_match_the_unbatched_run(tmp_path: Path, tiny_bundle: Path,
                                                            demo_footage: Path) -> None:
    # long-walk: 6 windows of 8 s (3 batches of 2); with-original: 5 s and 6 s (alone each)
    lib = make_library(demo_footage, tmp_path / "lib", ["long-walk.mkv", "with-original.mp4"],
                       {"long-walk.mkv": ["footsteps", "wind"], "with-original.mp4": ["a dog barks", "rain falls"]})
    gen = {"bundle": str(tiny_bundle), "steps": 3, "tracks": 2}
    embedded = tmp_path / "embedded"
    proc = stepfoley(["--data-dir", str(embedded), "run", str(lib), "--bundle", str(tiny_bundle),
                      "--steps", "3", "--tracks", "2"], env={"STEPFOLEY_GPU_BATCH": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr

    state = tmp_path / "stack"
    env = {**os.environ, "STEPFOLEY_LIBRARY": str(lib), "STEPFOLEY_BUNDLE": str(tiny_bundle),
           "STEPFOLEY_GPU_BATCH": "2"}
    up = subprocess.run([sys.executable, str(REPO / "deployments" / "stack.py"), "up", "--state",
                         str(state)], env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        info = json.loads((state / "pids.json").read_text())
        data = Path(info["data_dir"])
        url = f"sqlite:///{data / 'stepfoley.db'}"
        out = _backfill(info, state, {"library": str(lib), "settings": gen})
        names = json.loads(out.split("TASK_RUNS", 1)[1].strip().splitlines()[0])
        assert names == sorted(["window 0.0+0.1", "window 1.0+1.1", "window 2.0+2.1",
                                "window 0.0", "window 1.0"]), names

        ref, got = _tracks(f"sqlite:///{embedded / 'stepfoley.db'}"), _tracks(url)
        assert len(got) == len(ref) > 6
        for r, g in zip(ref, got):
            assert r[:5] == g[:5]  # window, order, version, seed
            a, b = sf.read(r[6], dtype="float32")[0], sf.read(g[6], dtype="float32")[0]
            np.testing.assert_allclose(b, a, atol=1e-4, rtol=0)
        assert {g[8] for g in got} == {1, 2} and sum(g[8] == 2 for g in got) >= 6
        assert not list((data / "leases").glob("*.json"))

        # a rerun is a no-op: same rows, same files, nothing generated
        _backfill(info, state, {"library": str(lib), "settings": gen})
        assert _tracks(url) == got

        # a batch with one window whose file is gone fails that window only, named
        s = load_settings({"data_dir": data, **gen}).to_json()
        asset = asset_stages.ingest_asset(str(lib / "long-walk.mkv"), s, None)
        jobs = asset_stages.propose_prompts(asset, asset_stages.plan_windows(asset, s), s)[:2]
        jobs[1] = {**jobs[1], "path": str(tmp_path / "gone.mkv")}
        p = subprocess.run([sys.executable, "-c", DEFER, json.dumps(jobs), json.dumps(s)],
                           cwd=REPO, text=True, capture_output=True, timeout=400,
                           env={**os.environ, "PREFECT_API_URL": info["api_url"],
                                "PREFECT_HOME": str(state / "prefect-home"),
                                "PREFECT_LOCAL_STORAGE_PATH": str(data / "prefect-storage")})
        end = json.loads(p.stdout.split("END", 1)[1].strip().splitlines()[0])
        assert end["type"] == "FAILED", end
        assert "1 of 2 windows failed (1 generated)" in end["message"], end
        assert "window 0.1: " in end["message"] and "gone.mkv" in end["message"], end
        assert _tracks(url) == got  # the good window: read back, nothing regenerated
        agent_log = (state / "logs" / "agent-0.log").read_text()
        assert "stepfoley-agent-ready" in agent_log
        assert subprocess.run(["kill", "-0", str(info["agent-0"])]).returncode == 0, agent_log[-2000:]
    finally:
        subprocess.run([sys.executable, str(REPO / "deployments" / "stack.py"), "down", "--state",
                        str(state)], capture_output=True, timeout=120, cwd=REPO)


def _stems(url: str) -> list[tuple]:
    with session_scope(make_engine(url)) as s:
        return sorted(s.execute(select(Track.seed, Track.order, Track.version, Track.batch_size,
                                       Track.stem_sha256)).all())


@pytest.mark.heavy
@pytest.mark.server
@pytest.mark.timeout(1200)
def test_a_killed_agents_batch_is_redone_as_the_embedded_batched_run(
        tmp_path: Path, tiny_bundle: Path, demo_footage: Path) -> None:
    """kill -9 of the agent mid-batch: the caller sees a window's lease lapse, dispatches the
    batch again as the same windows, a new agent resumes it from the recorded tracks; the
    tracks are byte-identical to the embedded run's with the same batches (B = 2 in process:
    generate-windows tasks)."""
    lib = make_library(demo_footage, tmp_path / "lib", ["long-walk.mkv"],
                       {"long-walk.mkv": ["footsteps", "wind"]})
    gen = {"bundle": str(tiny_bundle), "steps": 12, "tracks": 2}
    embedded = tmp_path / "embedded"
    proc = stepfoley(["--data-dir", str(embedded), "run", str(lib), "--bundle", str(tiny_bundle),
                      "--steps", "12", "--tracks", "2"], env={"STEPFOLEY_GPU_BATCH": "2"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ref = _stems(f"sqlite:///{embedded / 'stepfoley.db'}")
    assert len(ref) == 12 and {r[3] for r in ref} == {2}  # the embedded run batched too

    state = tmp_path / "stack"
    env = {**os.environ, "STEPFOLEY_LIBRARY": str(lib), "STEPFOLEY_BUNDLE": str(tiny_bundle),
           "STEPFOLEY_GPU_BATCH": "2", "STEPFOLEY_WINDOW_LEASE_TTL_S": "4"}
    up = subprocess.run([sys.executable, str(REPO / "deployments" / "stack.py"), "up", "--state",
                         str(state)], env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
    spare: subprocess.Popen | None = None
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        info = json.loads((state / "pids.json").read_text())
        data = Path(info["data_dir"])
        script = ("import json,sys\nfrom prefect.deployments import run_deployment\n"
                  "fr = run_deployment('backfill-library/on-demand', parameters=json.loads(sys.argv[1]),"
                  " timeout=600, poll_interval=0.5)\nprint('STATE', fr.state.type.value)\n")
        run = subprocess.Popen([sys.executable, "-c", script,
                                json.dumps({"library": str(lib), "settings": gen})], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PREFECT_API_URL": info["api_url"],
                                    "PREFECT_HOME": str(state / "prefect-home")})
        leases = data / "leases"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and len(list(leases.glob("*.json")) if leases.is_dir() else []) < 2:
            time.sleep(0.001)  # kill the moment it holds both: see test_gpu_agent_faults.py
        held = [json.loads(p.read_text()) for p in leases.glob("*.json")]
        assert len(held) == 2 and {h["batch"] for h in held} == {2}, held  # one lease per window
        os.kill(info["agent-0"], signal.SIGKILL)
        spare = start_spare_agent(info, env, state / "logs" / "agent-spare.log")
        out, _ = run.communicate(timeout=600)
        assert "STATE COMPLETED" in out, out[-3000:] + stack_diagnosis(info, state)
        url = f"sqlite:///{data / 'stepfoley.db'}"
        # byte-identical, no duplicate rows
        assert _stems(url) == ref, stack_diagnosis(info, state)
        assert not list((data / "stems").rglob("*.tmp")) and not list(leases.glob("*.json"))
        assert "stepfoley-window-timing" in (state / "logs" / "agent-spare.log").read_text()
    finally:
        if spare is not None:
            spare.terminate()
            try:
                spare.wait(timeout=20)
            except subprocess.TimeoutExpired:
                spare.kill()
        subprocess.run([sys.executable, str(REPO / "deployments" / "stack.py"), "down", "--state",
                        str(state)], capture_output=True, timeout=120, cwd=REPO)
