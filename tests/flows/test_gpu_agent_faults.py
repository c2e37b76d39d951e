"""Faults of the warm GPU agents (issue #18 §3), with a real Prefect server and real agents.

- an agent whose bundle does not load refuses to start, with the reason, exit code 3;
- an agent `kill -9`ed mid-window (the moment its lease appears, before the server heard of
  its run starting): its window's lease lapses, the caller marks the task run Crashed and
  dispatches it again, a restarted agent finishes it; the backfill completes with
  the tracks of the embedded run (no duplicate rows, no temp files left), within the lease;
- a window asking for a bundle the agent cannot load fails its asset with the reason, and
  the backfill and the agent go on.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from sql.schema import Asset, Track
from sql.session import make_engine, session_scope
from tests.flows.conftest import make_library, stack_diagnosis, start_spare_agent, stepfoley

pytestmark = pytest.mark.heavy

REPO = Path(__file__).resolve().parents[2]
TTL_S = 4.0


def _corrupt_bundle(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    for f in (dst / "transformer").glob("*.safetensors"):
        f.write_bytes(b"not a safetensors file")
    return dst


def test_agent_with_broken_bundle_refuses_to_start(tmp_path: Path, tiny_bundle: Path) -> None:
    bad = _corrupt_bundle(tiny_bundle, tmp_path / "bad")
    p = subprocess.run([sys.executable, "-m", "flows.gpu_agent", "--bundle", str(bad)],
                       capture_output=True, text=True, timeout=120, cwd=REPO,
                       env={**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api"})
    assert p.returncode == 3, p.stdout + p.stderr
    assert f"could not load model bundle {bad}" in p.stderr, p.stderr
    assert "stepfoley-agent-ready" not in p.stdout


def _tracks(url: str) -> list[tuple]:
    with session_scope(make_engine(url)) as s:
        return sorted(s.execute(select(Track.order, Track.version, Track.seed, Track.stem_sha256)).all())


def _backfill(info: dict, state: Path, params: dict, timeout: float = 600) -> subprocess.Popen:
    script = ("import json,sys\n"
              "from prefect.deployments import run_deployment\n"
              "fr = run_deployment('backfill-library/on-demand', parameters=json.loads(sys.argv[1]),"
              " timeout=600, poll_interval=0.5)\n"
              "print('STATE', fr.state.type.value)\n")
    return subprocess.Popen([sys.executable, "-c", script, json.dumps(params)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PREFECT_API_URL": info["api_url"],
                                 "PREFECT_HOME": str(state / "prefect-home")})


@pytest.mark.server
@pytest.mark.timeout(900)
def test_killed_agent_window_is_redone_and_bad_bundle_fails_only_its_asset(
        tmp_path: Path, tiny_bundle: Path, demo_footage: Path) -> None:
    lib = make_library(demo_footage, tmp_path / "lib", ["three-shots.mp4"],
                       {"three-shots.mp4": ["a dog barks", "rain falls"]})
    gen = {"bundle": str(tiny_bundle), "steps": 12, "tracks": 2}
    embedded = tmp_path / "embedded"
    proc = stepfoley(["--data-dir", str(embedded), "run", str(lib), "--bundle", str(tiny_bundle),
                      "--steps", "12", "--tracks", "2"])
    assert proc.returncode == 0, proc.stdout + proc.stderr

    state = tmp_path / "stack"
    env = {**os.environ, "STEPFOLEY_LIBRARY": str(lib), "STEPFOLEY_BUNDLE": str(tiny_bundle),
           "STEPFOLEY_WINDOW_LEASE_TTL_S": str(TTL_S)}
    up = subprocess.run([sys.executable, str(REPO / "deployments" / "stack.py"), "up", "--state",
                         str(state)], env=env, capture_output=True, text=True, timeout=300,
                        cwd=REPO)
    spare: subprocess.Popen | None = None
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        info = json.loads((state / "pids.json").read_text())
        data = Path(info["data_dir"])
        run = _backfill(info, state, {"library": str(lib), "settings": gen})
        leases = data / "leases"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not (leases.is_dir() and any(leases.glob("*.json"))):
            time.sleep(0.001)
        assert leases.is_dir() and any(leases.glob("*.json")), "no window ever started"
        # mid-window, the moment it holds a lease: its PENDING/RUNNING events are still unsent,
        # so the server records the run SCHEDULED for ever (measured; CI hung on it for 600 s
        # when the caller trusted the recorded state over the lease)
        os.kill(info["agent-0"], signal.SIGKILL)
        killed_at = time.monotonic()
        spare = start_spare_agent(info, env, state / "logs" / "agent-spare.log")
        out, _ = run.communicate(timeout=600)
        recovered_s = time.monotonic() - killed_at
        assert "STATE COMPLETED" in out, out[-3000:] + stack_diagnosis(info, state)
        url = f"sqlite:///{data / 'stepfoley.db'}"
        with session_scope(make_engine(url)) as s:
            statuses = list(s.execute(select(Asset.status, Asset.error)).all())
            n_tracks = s.execute(select(func.count(Track.id))).scalar_one()
        assert statuses == [("done", None)], stack_diagnosis(info, state)
        assert _tracks(url) == _tracks(f"sqlite:///{embedded / 'stepfoley.db'}")
        assert n_tracks == len(_tracks(url))  # no duplicate rows
        assert not list((data / "stems").rglob("*.tmp")), "half-written stems left"
        assert not list(leases.glob("*.json"))
        spare_log = (state / "logs" / "agent-spare.log").read_text()
        assert "stepfoley-window-timing" in spare_log, spare_log[-2000:]
        # bounded by the lease, not by a person: ttl + a caller poll + the rest of the asset
        print(f"recovery (kill -9 → backfill done): {recovered_s:.1f} s, lease ttl {TTL_S} s")
        assert recovered_s < TTL_S + 120

        # a window asking for a bundle the agent cannot load: that asset fails, nothing else
        lib2 = make_library(demo_footage, tmp_path / "lib2", ["kitchen-door.mp4"],
                            {"kitchen-door.mp4": ["a door slams"]})
        bad = _corrupt_bundle(tiny_bundle, tmp_path / "bad-bundle")
        run = _backfill(info, state, {"library": str(lib2),
                                      "settings": {**gen, "bundle": str(bad)}})
        out, _ = run.communicate(timeout=600)
        # the backfill is not taken down
        assert "STATE COMPLETED" in out, out[-3000:] + stack_diagnosis(info, state)
        with session_scope(make_engine(url)) as s:
            err = s.execute(select(Asset.error).where(Asset.status == "failed")).scalars().all()
        assert len(err) == 1 and "could not load model bundle" in err[0], err
        assert spare.poll() is None, "the agent went down with the bad window"
    finally:
        if spare is not None:
            spare.terminate()
            try:
                spare.wait(timeout=20)
            except subprocess.TimeoutExpired:
                spare.kill()
        subprocess.run([sys.executable, str(REPO / "deployments" / "stack.py"), "down", "--state",
                        str(state)], capture_output=True, timeout=120, cwd=REPO)
