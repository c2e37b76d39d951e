"""Backfill a library: every asset the database does not list as done, each exactly once.

Discovery comes first and loads no model code (tasks/discovery.py); the pipeline (torch,
diffusers, the prompting models: ~10 s of imports on the 2-core box, most of a no-op nightly
run) is imported only once discovery has found an asset to process, on the flow's main
thread before the task runner's threads start (the import race of issue #21).
"""

from __future__ import annotations

import os
from typing import Any

from prefect import flow, task
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from tasks import runs
from tasks.prefect_run_tasks import discover_task, report_run_task
from tasks.report import Progress, progress_key
from tasks.stale_subflows import crash_stale_subflows
from tasks.warm_imports import import_pipeline_modules


# Not retried: the asset's stages retry themselves, and its failure is recorded by process_asset.
# No tag: a tagged task run asks the Prefect API for concurrency slots before it starts, one
# round trip per asset that no limit used, and one that fails while the server's database is
# down (500), which crashed the whole backfill (tests/flows/test_postgres_restart.py); the
# database claim and the task runner's workers bound the assets in flight.
@task(name="claim-and-process")
def claim_and_process(candidate: dict[str, Any], settings: dict[str, Any], run_id: int) -> dict[str, Any]:
    """Process one asset under a database claim, so concurrent backfills never share it."""
    # Imported here, not at the top: they load the whole pipeline, which a backfill with nothing
    # to do never needs; backfill_library imported them on its main thread before this task's
    # thread started (#21), so this is a lookup in sys.modules.
    from flows.generate_window import through_api_outage
    from flows.process_asset import process_asset  # (same reason)

    owner = runs.claim_owner(run_id)
    if not runs.claim(candidate["asset_id"], owner, settings):
        return {"path": candidate["path"], "status": "skipped", "reason": "claimed elsewhere"}
    try:
        with runs.claim_heartbeat(candidate["asset_id"], owner, settings):
            # a Prefect server restart: start the asset's subflow again once the API is back
            return through_api_outage(process_asset, candidate["path"], settings, run_id)
    finally:
        runs.release(candidate["asset_id"], owner, settings)


def _assets_at_once() -> int:
    """Assets a worker's backfill processes at once: ``STEPFOLEY_CONCURRENCY`` (default 1; the
    CLI passes its own). With warm GPU agents the worker sets it to about twice the agents, so
    the next asset's scenes and prompts run while the agents generate (deployments/stack.py)."""
    try:
        return max(1, int(os.environ.get("STEPFOLEY_CONCURRENCY", "1")))
    except ValueError:
        return 1


@flow(name="backfill-library", flow_run_name="backfill {library}", log_prints=False,
      task_runner=ThreadPoolTaskRunner(max_workers=_assets_at_once()))
def backfill_library(library: str, settings: dict[str, Any] | None = None,
                     limit: int | None = None, kind: str = "backfill",
                     paths: list[str] | None = None,
                     run_id: int | None = None) -> dict[str, Any]:
    """Discover, register and process (bounded concurrency) the library's unfinished assets."""
    s = runs.resolve_settings(settings)
    # 1. a run row (with the Prefect flow run id) for provenance
    if run_id is None:
        run_id = runs.start_run(kind, {"library": library, "limit": limit}, s)
    runs.attach_flow_run(run_id, s)
    # 2. discover files, register them; bad files become failure rows here
    candidates = discover_task(library, s, run_id, limit, paths)
    if candidates:
        # the pipeline, on this thread before the task runner's threads start (#21)
        import_pipeline_modules()
        # claim_and_process's imports, done here first (flows.process_asset imports the other)
        import flows.process_asset  # noqa: F401
    # 3. fan out under claims; the progress artifact moves as each asset ends
    progress = Progress(len(candidates), key=progress_key(run_id))
    futures = [claim_and_process.submit(c, s, run_id) for c in candidates]
    position = {f: i for i, f in enumerate(futures)}
    results: list[Any] = [None] * len(futures)
    for future in as_completed(futures):
        results[position[future]] = future.result(raise_on_failure=False)
        progress.advance(results[position[future]])
    # 4. every subflow has returned: none may stay RUNNING in Prefect (a lost final state)
    if candidates:
        crash_stale_subflows(runs.current_flow_run_id())
    # 5. close the run and publish the report artifacts (table + markdown summary)
    summary = runs.finish_run(run_id, results, s)
    report_run_task(run_id, s)
    return summary
