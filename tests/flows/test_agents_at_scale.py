"""Warm GPU agents through a Prefect server restart mid-backfill (issue #18 §3), for real.

A library of 20 short assets (benchmarks/fault_audit.py: real ffmpeg video, distinct content),
the shipped bundle, two GPU agents, one `cpu` process worker, PostgreSQL for the Prefect server
and the provenance database (`deployments/stack.py up --postgres --gpu-agents 2`). Once a few
assets are done and an agent is mid-window, the real `prefect server start` process is stopped
(SIGTERM) and started again on the same port and database (`stack.py restart server`).

The backfill must then finish by itself with: every asset done exactly once (one run row, one
run_asset row each), no duplicate track/mix/output rows (every track version 1), no temp file,
lease or orphan stem/output file, every recorded file with its recorded sha256, and stems,
mixes and outputs byte-identical to the embedded run of the same library (fault_audit.audit
and compare), and both agents reconnected by themselves. The same scenario on the code before
#18 §3's fix failed: a caller's poll during the outage raised ConnectError and failed its
asset (the run ended `failed`), and a window the server had queued stayed SCHEDULED for good
(the restarted server's queue is empty).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks import fault_audit as fa
from tests.flows.conftest import fa_reference, start_backfill

pytestmark = [pytest.mark.heavy, pytest.mark.server, pytest.mark.postgres]

N_ASSETS = 20
TTL_S = 6.0
# Enough work per window that the agents are the bottleneck: windows queue on the server,
# and the restart loses that queue.
GEN = ["--steps", "6", "--tracks", "2"]


def _done(db_url: str, engine: dict) -> tuple[int, str | None]:
    from sqlalchemy import func, select

    from sql.schema import Asset, Run
    from sql.session import make_engine, session_scope

    if "e" not in engine:
        engine["e"] = make_engine(db_url)
    try:
        with session_scope(engine["e"]) as s:
            done = s.execute(select(func.count(Asset.id)).where(Asset.status == "done")).scalar_one()
            run = s.execute(select(Run.status).order_by(Run.id)).scalars().first()
        return int(done), run
    except Exception:  # the first flow run has not created the tables yet
        return 0, None


@pytest.mark.timeout(1800)
def test_server_restart_mid_backfill_loses_nothing(tmp_path: Path) -> None:
    from tasks.config import DEFAULT_BUNDLE

    lib, clean = fa_reference(tmp_path, N_ASSETS, GEN)

    state = tmp_path / "stack"
    env = {**os.environ, "STEPFOLEY_LIBRARY": str(lib), "STEPFOLEY_WINDOW_LEASE_TTL_S": str(TTL_S)}
    engine: dict = {}
    try:
        fa.stack("up", "--state", str(state), "--postgres", "--gpu-agents", "2", env=env)
        info = json.loads((state / "pids.json").read_text())
        data, db_url = Path(info["data_dir"]), info["db_url"]
        params = {"library": str(lib),
                  "settings": {"bundle": str(DEFAULT_BUNDLE), "steps": 6, "tracks": 2}}
        start_backfill(info, state, params)

        # mid-backfill: a few assets done, an agent holding a window
        fa.wait_for(lambda: _done(db_url, engine)[0] >= 4, 900, 0.5, "4 assets done")
        leases = data / "leases"
        fa.wait_for(lambda: leases.is_dir() and any(leases.glob("*.json")), 300, 0.02,
                    "a window in progress")
        done_at_stop = _done(db_url, engine)[0]
        assert done_at_stop < N_ASSETS, "the backfill ended before the restart: nothing tested"
        restarted = json.loads(fa.stack("restart", "server", "--state", str(state)).splitlines()[-1])
        up_at = time.time()

        status = fa.wait_for(lambda: (lambda d, r: r if r and r != "running" else None)(
            *_done(db_url, engine)), 1200, 0.5, "the backfill's end")
        timings = fa.agent_timings(state / "logs")
        after = sorted(t["end"] for t in timings if t["end"] > up_at)
        print(f"server restart: stop {restarted['stop_s']} s, start {restarted['start_s']} s, "
              f"{done_at_stop}/{N_ASSETS} done at the stop; first window done "
              f"{after[0] - up_at:.1f} s after the server answered" if after else "no window after")
        assert status == "completed", status
        for i in range(2):  # both agents outlived the restart
            log = (state / "logs" / f"agent-{i}.log").read_text(errors="replace")
            assert "stepfoley-agent-reconnected" in log, log[-3000:]
        snap = fa.snapshot(db_url)
        report = fa.audit(snap, data, N_ASSETS)
        assert not report["problems"], report["problems"]
        assert fa.compare(snap, clean) == []
    finally:
        if "e" in engine:
            engine["e"].dispose()
        subprocess.run([sys.executable, str(fa.STACK), "down", "--state", str(state)],
                       capture_output=True, timeout=300, cwd=fa.ROOT)
