"""Scheduled processing of new uploads: files that appeared since the last scan and are complete."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.backfill import backfill_library
from tasks import runs
from tasks.prefect_tasks import stable_uploads_task


@flow(name="process-new-uploads", flow_run_name="uploads {inbox}", log_prints=False)
def process_new_uploads(inbox: str, settings: dict[str, Any] | None = None,
                        stable_scans: int = 2) -> dict[str, Any]:
    """Process inbox files whose size and mtime held still across ``stable_scans`` scans.

    Nothing is moved or deleted: the database remembers what was processed, so the inbox can
    stay the user's own folder.
    """
    s = runs.resolve_settings(settings)
    # 1. scan: record sizes, keep only files unchanged since the previous scan
    ready = stable_uploads_task(inbox, s, stable_scans)
    if not ready:
        return {"inbox": inbox, "ready": 0}
    # 2. the same path as a backfill, restricted to the ready files
    return backfill_library(inbox, s, kind="uploads", paths=ready)
