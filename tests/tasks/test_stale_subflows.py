"""tasks/stale_subflows.py against a real Prefect API (Prefect's test harness).

A parent flow runs two subflows, as a backfill runs process-asset; one of them then has its
state put back to RUNNING through the API, which is what a lost final ``set_state`` leaves
(tests/flows/test_postgres_restart.py saw it once per database restart). After the parent's
fan-out, ``crash_stale_subflows`` must mark that one Crashed with the reason and leave the
completed sibling, the parent and the runs of other flows alone.
"""

from __future__ import annotations

from typing import Iterator

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.runtime import flow_run
from prefect.states import Running

from tasks.stale_subflows import REASON, crash_stale_subflows


@pytest.fixture(scope="module")
def harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=None):
        yield


@flow(name="child")
def child(n: int) -> str:
    return str(flow_run.id)


@flow(name="other")
def other() -> str:
    return str(flow_run.id)


@flow(name="parent")
def parent() -> dict[str, object]:
    ids = [child(0), child(1)]
    with get_client(sync_client=True) as client:  # child 1's final state "lost"
        client.set_flow_run_state(ids[1], Running(), force=True)
    marked = crash_stale_subflows(str(flow_run.id))
    return {"ids": ids, "marked": marked, "self": str(flow_run.id)}


def test_only_the_unfinished_subflow_is_marked_crashed(harness: None) -> None:
    stray = other()
    with get_client(sync_client=True) as client:  # an unrelated run left RUNNING: not ours
        client.set_flow_run_state(stray, Running(), force=True)
    out = parent()
    assert len(out["marked"]) == 1
    with get_client(sync_client=True) as client:
        done, lost = (client.read_flow_run(i) for i in out["ids"])
        mine = client.read_flow_run(out["self"])
        unrelated = client.read_flow_run(stray)
    assert done.state.type.value == "COMPLETED"
    assert lost.state.type.value == "CRASHED" and lost.state.message == REASON
    assert out["marked"] == [lost.name]
    assert mine.state.type.value == "COMPLETED"
    assert unrelated.state.type.value == "RUNNING"


def test_no_flow_run_no_call() -> None:
    assert crash_stale_subflows(None) == []
