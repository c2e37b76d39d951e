"""Prefect artifacts for a run: a table of assets and a markdown summary, plus progress.

The database is the record of truth; artifacts are the view an operator sees in the Prefect
UI next to the flow run. Rows come from the provenance database, never from in-memory state,
so a resumed run reports what actually exists.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, \
    create_table_artifact, update_progress_artifact


def run_rows(run_id: int, settings: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per asset touched by the run: status, windows, tracks, wall time, error."""
    from sql.repository import run_asset_rows
    from sql.session import session_scope
    from tasks.runs import engine_for

    with session_scope(engine_for(settings)) as session:
        rows = [dict(r) for r in run_asset_rows(session, run_id)]
    return [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()} for r in rows]


def summary_markdown(rows: list[dict[str, Any]]) -> str:
    done = sum(r.get("status") == "done" for r in rows)
    failed = [r for r in rows if r.get("status") == "failed"]
    tracks = sum(int(r.get("tracks") or 0) for r in rows)
    lines = [f"# stepfoley run: {done} done, {len(failed)} failed, {tracks} tracks", ""]
    if failed:
        lines += ["## Failures", ""]
        lines += [f"- `{r.get('path')}`: {r.get('error')}" for r in failed]
    return "\n".join(lines)


@task(name="report-run", retries=2, retry_delay_seconds=2)
def report_run_task(run_id: int, settings: dict[str, Any]) -> None:
    rows = run_rows(run_id, settings)
    create_table_artifact(key=f"stepfoley-run-{run_id}", table=rows or [{"status": "empty"}],
                          description="Assets of this run: status, windows, tracks, wall time, error")
    create_markdown_artifact(key=f"stepfoley-summary-{run_id}", markdown=summary_markdown(rows),
                             description="Summary of this run")


class Progress:
    """A Prefect progress artifact for long backfills (no-op outside a flow run)."""

    def __init__(self, total: int) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.id: Any = None
        try:
            self.id = create_progress_artifact(progress=0.0, description="backfill progress")
        except Exception:  # outside a flow run context there is nowhere to report to
            self.id = None

    def advance(self) -> None:
        self.done += 1
        if self.id is not None:
            update_progress_artifact(self.id, progress=100.0 * self.done / self.total)
