"""Prefect artifacts for a run: a table of assets and a markdown summary, plus progress.

The database is the record of truth; artifacts are the view an operator sees in the Prefect
UI next to the flow run. Rows come from the provenance database, never from in-memory state,
so a resumed run reports what actually exists. ``report_run`` is the report-run task
(tasks/prefect_tasks.py).
"""

from __future__ import annotations

from typing import Any

from prefect.artifacts import create_markdown_artifact, create_progress_artifact, \
    create_table_artifact, update_progress_artifact

from sql.repository import run_asset_rows
from tasks.runs import session


def run_rows(run_id: int, settings: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per asset touched by the run: status, windows, tracks, wall time, error."""
    with session(settings) as db:
        rows = [dict(r) for r in run_asset_rows(db, run_id)]
    return [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()} for r in rows]


def summary_markdown(rows: list[dict[str, Any]]) -> str:
    done = sum(r.get("status") == "done" for r in rows)
    failed = [r for r in rows if r.get("status") == "failed"]
    tracks = sum(int(r.get("tracks") or 0) for r in rows)
    lines = [f"# stepfoley run: {done} done, {len(failed)} failed, {tracks} tracks", ""]
    if failed:
        lines += ["## Failures", ""]
        lines += [f"- `{r.get('path')}`: {r.get('error')}" for r in failed]
    noted = [r for r in rows if r.get("prompts_note")]
    if noted:
        lines += ["", "## Prompts", ""]
        lines += [f"- `{r.get('path')}`: {r['prompts_note']}" for r in noted]
    return "\n".join(lines)


def report_run(run_id: int, settings: dict[str, Any]) -> None:
    """The run's table and markdown summary as Prefect artifacts (in a flow run's context)."""
    rows = run_rows(run_id, settings)
    create_table_artifact(key=f"stepfoley-run-{run_id}", table=rows or [{"status": "empty"}],
                          description="Assets of this run: status, windows, tracks, wall time, error")
    create_markdown_artifact(key=f"stepfoley-summary-{run_id}", markdown=summary_markdown(rows),
                             description="Summary of this run")


def progress_key(run_id: int) -> str:
    return f"stepfoley-progress-{run_id}"


class Progress:
    """A Prefect progress artifact for long backfills: percent of the run's assets finished.

    Created when the to-do list is known and updated as each asset ends (done, failed or
    skipped). Reporting is best effort: without a flow run context, or when the Prefect API
    does not answer, the backfill goes on without it.
    """

    def __init__(self, total: int, key: str | None = None) -> None:
        self.total = max(int(total), 0)
        self.done = 0
        self.failed = 0
        self.id: Any = None
        try:
            self.id = create_progress_artifact(progress=self.percent, key=key,
                                               description=self.description)
        except Exception:  # outside a flow run context there is nowhere to report to
            self.id = None

    @property
    def percent(self) -> float:
        return 100.0 if self.total == 0 else round(100.0 * self.done / self.total, 2)

    @property
    def description(self) -> str:
        failed = f", {self.failed} failed" if self.failed else ""
        return f"{self.done}/{self.total} assets finished{failed}"

    def advance(self, result: Any) -> None:
        """One more asset finished; ``result`` is its summary row, or the exception that ended
        it (a failure, as in ``finish_run``, when it is not a dict or its status says so)."""
        self.done = min(self.done + 1, self.total)
        if not isinstance(result, dict) or result.get("status") == "failed":
            self.failed += 1
        if self.id is None:
            return
        try:
            update_progress_artifact(self.id, progress=self.percent, description=self.description)
        except Exception:  # a missed update is corrected by the next one
            pass
