"""One asset end to end: ingest → scenes/windows → prompts → generation → mix → mux → report."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.transactions import CommitMode, transaction

from flows.generate_window import dispatch_windows
from tasks import asset_stages, runs
from tasks.errors import MediaError
from tasks.prefect_tasks import (finish_asset_task, ingest_asset_task, mix_asset_task,
                                 mux_asset_task, plan_windows_task, propose_prompts_task)
from tasks.warm_imports import import_pipeline_modules


@flow(name="process-asset", flow_run_name="asset {path}", log_prints=False,
      validate_parameters=True)
def process_asset(path: str, settings: dict[str, Any] | None = None,
                  run_id: int | None = None) -> dict[str, Any]:
    """Give one video its sound. Returns the asset's summary row (also recorded in the DB)."""
    import_pipeline_modules()  # before any thread of ours or Prefect's imports lazily (#21)
    s = runs.resolve_settings(settings)
    try:
        # Each stage's cache record is written as soon as the stage ends (EAGER), not when an
        # enclosing task (claim-and-process) ends: a crash mid-asset keeps what was finished.
        with transaction(commit_mode=CommitMode.EAGER):
            # 1. ingest: hash, probe, asset row (a file already done is skipped here)
            asset = ingest_asset_task(path, s, run_id)
            if asset["status"] == "done":
                return asset_stages.asset_summary(asset["id"], s)
            # 2. shots and model windows (cached: tasks/stage_cache.py)
            windows = plan_windows_task(asset, s)
            # 3. missing-sound prompts per shot, shared by its windows (cached)
            jobs = propose_prompts_task(asset, windows, s)
            # 4. generation, tracks in order per window (on the GPU agents when configured:
            #    all windows at once, flows/generate_window.py)
            dispatch_windows(jobs, s)
            # 5. mix stems over the original bed (cached)
            mix = mix_asset_task(asset, s)
            # 6. mux mix + stems into the video, picture copied (cached)
            mux_asset_task(asset, mix, s)
            # 7. done
            finish_asset_task(asset, s)
    except MediaError as err:
        asset_stages.fail_asset(path, err, s, run_id)
    except Exception as err:
        asset_stages.fail_asset(path, err, s, run_id)
        raise
    return asset_stages.asset_summary_by_path(path, s)
