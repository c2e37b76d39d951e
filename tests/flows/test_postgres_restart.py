"""PostgreSQL restarted under the warm GPU agents mid-backfill (issue #18 §3), for real.

The production layout on one host (`deployments/stack.py up --postgres --gpu-agents 2`): one
PostgreSQL cluster holds both the Prefect server's database and the provenance database; two
GPU agents and one `cpu` process worker run a backfill of short assets
(benchmarks/fault_audit.py: real ffmpeg video, distinct content). Once a few assets are done
and an agent is mid-window, the cluster is stopped (`pg_ctl stop -m fast`: every connection of
every process is cut), kept down for ``DOWN_S`` and started again on the same port and data.

What has to hold afterwards, by itself: the backfill run completes; every asset done exactly
once (one run row, one run_asset row each), no duplicate track/mix/output rows (every track
version 1), no temp file, lease or orphan stem/output file, every recorded file with its
recorded sha256, and stems, mixes and outputs byte-identical to the embedded run of the same
library (fault_audit.audit and compare). Who waits for what: the provenance engine's new
connections wait for the server (``db_reconnect_s``, sql/session.py) and the pool drops dead
connections (pre-ping); the Prefect server answers 503 while its database is gone, which
Prefect's clients retry.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from benchmarks import fault_audit as fa
from tests.flows.conftest import fa_reference, start_backfill
from tests.pg import PgCluster

pytestmark = [pytest.mark.heavy, pytest.mark.server, pytest.mark.postgres]

N_ASSETS = 8
TTL_S = 6.0
DOWN_S = 8.0
GEN = ["--steps", "6", "--tracks", "2"]


def _done(db_url: str, engine: dict) -> tuple[int, str | None]:
    from sqlalchemy import func, select

    from sql.schema import Asset, Run
    from sql.session import make_engine, session_scope

    try:
        if "e" not in engine:
            engine["e"] = make_engine(db_url)
        with session_scope(engine["e"]) as s:
            done = s.execute(select(func.count(Asset.id)).where(Asset.status == "done")).scalar_one()
            run = s.execute(select(Run.status).order_by(Run.id)).scalars().first()
        return int(done), run
    except Exception:  # tables not created yet, or the database is down (this test's doing)
        return 0, None


@pytest.mark.timeout(1800)
def test_postgres_restart_mid_backfill_loses_nothing(tmp_path: Path) -> None:
    from tasks.config import DEFAULT_BUNDLE

    lib, clean = fa_reference(tmp_path, N_ASSETS, GEN)

    state = tmp_path / "stack"
    env = {**os.environ, "STEPFOLEY_LIBRARY": str(lib), "STEPFOLEY_WINDOW_LEASE_TTL_S": str(TTL_S)}
    engine: dict = {}
    try:
        fa.stack("up", "--state", str(state), "--postgres", "--gpu-agents", "2", env=env)
        info = json.loads((state / "pids.json").read_text())
        data, db_url = Path(info["data_dir"]), info["db_url"]
        cluster = PgCluster(Path(info["postgres"]).parent, int(make_url(db_url).port))
        params = {"library": str(lib),
                  "settings": {"bundle": str(DEFAULT_BUNDLE), "steps": 6, "tracks": 2}}
        flow_run = start_backfill(info, state, params)

        # mid-backfill: a few assets done, an agent holding a window
        fa.wait_for(lambda: _done(db_url, engine)[0] >= 2, 900, 0.5, "2 assets done")
        leases = data / "leases"
        fa.wait_for(lambda: leases.is_dir() and any(leases.glob("*.json")), 300, 0.02,
                    "a window in progress")
        done_at_stop = _done(db_url, engine)[0]
        assert done_at_stop < N_ASSETS, "the backfill ended before the restart: nothing tested"
        t0 = time.monotonic()
        cluster.stop()
        stopped = time.monotonic()
        time.sleep(DOWN_S)
        cluster.start()
        up = time.monotonic()

        status = fa.wait_for(lambda: _ended(db_url, engine, info["api_url"], flow_run), 1200, 0.5,
                             "the backfill's end")
        print(f"postgres restart: stop {stopped - t0:.1f} s, down {up - stopped:.1f} s, "
              f"{done_at_stop}/{N_ASSETS} done at the stop; backfill ended "
              f"{time.monotonic() - up:.1f} s after the database was back")
        snap = fa.snapshot(db_url)
        report = fa.audit(snap, data, N_ASSETS)
        facts = _prefect_facts(info, state)
        print("prefect:", json.dumps(facts))
        assert status == "completed", (status, report["problems"])
        assert not report["problems"], report["problems"]
        assert fa.compare(snap, clean) == []
        # Prefect's record: the backfill completed, each asset's process-asset flow run
        # completed exactly once, and none is left RUNNING: an attempt whose final state change
        # met the outage (the server answers 500) is marked Crashed by the backfill's end
        # (tasks/stale_subflows.py; before it, one stayed RUNNING per restart)
        assert facts["backfill"] == ["COMPLETED"], facts
        assert facts["completed_per_asset"] == {"1": N_ASSETS}, facts
        assert all(state == "CRASHED" for _, state, _ in facts["not_completed"]), facts
        for i in range(2):  # both agents outlived the restart
            p = info.get(f"agent-{i}")
            assert isinstance(p, int) and _alive(p), (state / "logs" / f"agent-{i}.log").read_text(
                errors="replace")[-3000:]
    finally:
        if "e" in engine:
            engine["e"].dispose()
        subprocess.run([sys.executable, str(fa.STACK), "down", "--state", str(state)],
                       capture_output=True, timeout=300, cwd=fa.ROOT)


FACTS = ("import json, collections\n"
         "from prefect.client.orchestration import get_client\n"
         "with get_client(sync_client=True) as c:\n"
         "    frs = c.read_flow_runs(limit=200)\n"
         "done = collections.Counter(f.name for f in frs if f.name.startswith('asset ')"
         " and f.state.type.value == 'COMPLETED')\n"
         "print('FACTS', json.dumps({\n"
         " 'backfill': [f.state.type.value for f in frs if f.name.startswith('backfill ')],\n"
         " 'asset_flow_runs': dict(collections.Counter(f.state.type.value for f in frs"
         "  if f.name.startswith('asset '))),\n"
         " 'not_completed': [[f.name.rsplit('/', 1)[-1], f.state.type.value, (f.state.message or '')[:200]]"
         "  for f in frs if f.name.startswith('asset ') and f.state.type.value != 'COMPLETED'],\n"
         " 'completed_per_asset': dict(collections.Counter(done.values()))}))\n")


def _prefect_facts(info: dict, state: Path) -> dict:
    """Flow runs as the Prefect server recorded them (read through its API)."""
    p = subprocess.run([sys.executable, "-c", FACTS], capture_output=True, text=True, timeout=120,
                       cwd=fa.ROOT, env={**os.environ, "PREFECT_API_URL": info["api_url"],
                                         "PREFECT_HOME": str(state / "prefect-home")})
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("FACTS ")]
    assert line, p.stdout[-2000:] + p.stderr[-2000:]
    return json.loads(line[0][len("FACTS "):])


def _ended(db_url: str, engine: dict, api_url: str, flow_run: str) -> str | None:
    """The run row's final status, or the Prefect flow run's final state when the flow ended
    without writing it (a crashed backfill must fail the test, not hang it)."""
    import httpx

    run = _done(db_url, engine)[1]
    if run and run != "running":
        return run
    try:
        state = httpx.get(f"{api_url}/flow_runs/{flow_run}", timeout=5).json()["state"]["type"]
    except Exception:  # the API is down or busy: ask again
        return None
    return f"flow run {state}" if state in ("FAILED", "CRASHED", "CANCELLED") else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
