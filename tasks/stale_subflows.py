"""Subflow runs a finished backfill left unfinished in Prefect: the record an outage breaks.

A backfill's ``process-asset`` subflows run in the backfill's own process, so once its fan-out
has ended every one of them has returned. Their states, though, are written by the Prefect
server into its database, and while that database restarts the server answers a flow run's
``set_state`` with 500 (Prefect 3.8.8 classes a refused database connection as an internal
error, not as the 503 its clients retry). The attempt then ends in its process without a
final state, and the asset is finished by a later one (``through_api_outage``,
flows/generate_window.py): the provenance database is right, but Prefect shows the first
attempt RUNNING for ever (seen in tests/flows/test_postgres_restart.py, once per restart).

``crash_stale_subflows`` runs at the end of a backfill and marks every subflow of it that is
not in a final state Crashed, with the reason. Anything else it finds there is stale for the
same reason (nothing of the backfill runs any more), so the rule needs no timing. What is done
is decided by the provenance database, never by these states.
"""

from __future__ import annotations

import logging
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (FlowRunFilter, FlowRunFilterParentFlowRunId,
                                            FlowRunFilterState, FlowRunFilterStateType)
from prefect.client.schemas.objects import StateType
from prefect.states import Crashed

log = logging.getLogger("stepfoley.stale_subflows")

FINAL = [StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED]
REASON = ("its process ended without the Prefect API recording a final state (API or its "
          "database unavailable); the asset's outcome is in the provenance database")


def crash_stale_subflows(flow_run_id: str | None) -> list[str]:
    """Mark the not-final subflow runs of the finished flow run ``flow_run_id`` Crashed;
    returns their names. Best effort: an API error is logged, not raised (the backfill's result
    does not depend on it)."""
    if not flow_run_id:
        return []
    try:
        with get_client(sync_client=True) as client:
            stale = client.read_flow_runs(flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[UUID(str(flow_run_id))]),
                state=FlowRunFilterState(type=FlowRunFilterStateType(not_any_=FINAL))))
            for run in stale:
                client.set_flow_run_state(run.id, Crashed(message=REASON), force=True)
    except Exception as exc:  # the record is cosmetic here: never fail the backfill for it
        log.warning("could not check the backfill's subflow runs: %s", exc)
        return []
    if stale:
        log.warning("marked %d subflow run(s) Crashed: %s", len(stale), REASON)
    return [run.name for run in stale]
