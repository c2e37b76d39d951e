"""Every Prefect task of the pipeline, declared once: a stage's plain function (in its own module,
callable and testable without Prefect) with its policy. Flows call these.

One pattern: ``name`` (what the Prefect UI and the cache records show), ``tags`` where a
concurrency limit applies (``gpu``), retries from ``tasks/policy.py`` (``CPU_STAGE`` or
``GPU_STAGE``), a time limit from there (``LONG_STAGE_S``, ``SHORT_STAGE_S``) where a stage can
hang on a file, and a cache policy from ``tasks/stage_cache.py``: ``cached_stage(name)`` for the
expensive stages (results under DATA_DIR/cache, valid while the files and rows they name are),
``NOT_CACHED`` for the stages that read or write the world as it is now (the library, the
asset row). Tasks that run once per run or per operator action keep Prefect's default.
"""

from __future__ import annotations

from typing import Any

from prefect import task

from tasks import asset_stages, policy
from tasks.stage_cache import NOT_CACHED, cached_stage
from tasks.config import settings_from_json
from tasks.generate import run_window, run_windows
from tasks.gpu_agent import serve_windows
from tasks.regenerate_track import regenerate
# Declared in their own module, which loads no model code: a backfill that finds nothing to do
# runs only these two and must not import the stages this module imports (issue #18 §4).
from tasks.prefect_run_tasks import discover_task, report_run_task  # noqa: F401  (listed here)

# ---------------------------------------------------------------- one asset (flows/process_asset.py)
ingest_asset_task = task(name="ingest", timeout_seconds=policy.SHORT_STAGE_S, **policy.CPU_STAGE,
                         **NOT_CACHED)(asset_stages.ingest_asset)
plan_windows_task = task(name="scenes", timeout_seconds=policy.LONG_STAGE_S, **policy.CPU_STAGE,
                         **cached_stage("scenes"))(asset_stages.plan_windows)
propose_prompts_task = task(name="prompts", timeout_seconds=policy.LONG_STAGE_S,
                            **policy.CPU_STAGE, **cached_stage("prompts"))(asset_stages.propose_prompts)
mix_asset_task = task(name="mix", timeout_seconds=policy.SHORT_STAGE_S, **policy.CPU_STAGE,
                      **cached_stage("mix"))(asset_stages.mix_asset)
mux_asset_task = task(name="mux", timeout_seconds=policy.SHORT_STAGE_S, **policy.CPU_STAGE,
                      **cached_stage("mux"))(asset_stages.mux_asset)
finish_asset_task = task(name="finish", **policy.CPU_STAGE, **NOT_CACHED)(asset_stages.finish_asset)

# ---------------------------------------------------------------- generation (flows/generate_window.py)
# On a GPU worker (the generate-window deployment): tagged, so the `gpu` tag concurrency limit
# guards the device's memory.
generate_window_task = task(name="generate-window", tags=["gpu"], timeout_seconds=policy.LONG_STAGE_S,
                            **policy.GPU_STAGE, **cached_stage("generate-window"))(run_window)
# In the process that runs the asset (no GPU deployment): untagged, since a tag costs a
# concurrency-slot round trip to the Prefect API per window and no limit applies in process.
generate_window_local_task = task(name="generate-window", timeout_seconds=policy.LONG_STAGE_S,
                                  **policy.GPU_STAGE, **cached_stage("generate-window"))(run_window)
# On a warm GPU agent (flows/gpu_agent.py serves it; flows/generate_window.py defers it): untagged,
# since each agent takes one window at a time (its task worker's limit) and a tag would cost a
# concurrency-slot round trip per window (docs/performance.md, "Warm GPU agents"). Not the stage
# cache: a deferred task's parameters are written with its result storage and serializer, which
# for cached_stage are "/" and JSON (the run context is not JSON); a rerun's window resumes from
# its recorded tracks instead (tasks/generate.py).
# One task run per batch of windows of one asset (``label``: "0.0+0.1"; one window: "0.0").
gpu_window_task = task(name="gpu-window", task_run_name="window {label}",
                       timeout_seconds=policy.LONG_STAGE_S, **policy.GPU_STAGE,
                       **NOT_CACHED)(serve_windows)
# The embedded run's batches (STEPFOLEY_GPU_BATCH > 1 in process). Not the stage cache: a
# batch's key would change with its composition; a rerun's batch resumes from its tracks.
generate_windows_local_task = task(name="generate-windows", task_run_name="window {label}",
                                   timeout_seconds=policy.LONG_STAGE_S, **policy.GPU_STAGE,
                                   **NOT_CACHED)(run_windows)

# ---------------------------------------------------------------- runs, uploads, the review loop
stable_uploads_task = task(name="scan-uploads", **policy.CPU_STAGE, **NOT_CACHED)(asset_stages.stable_uploads)


@task(name="regenerate-track", tags=["gpu"], timeout_seconds=policy.LONG_STAGE_S, **policy.GPU_STAGE)
def regenerate_task(asset: str, scene: int, track: int, settings: dict[str, Any], *,
                    prompt: str | None = None, seed: int | None = None,
                    beta: float | None = None, delete: bool = False) -> dict[str, Any]:
    """``regenerate`` on JSON settings (a task's parameters are JSON)."""
    return regenerate(asset, scene, track, settings_from_json(settings), prompt=prompt,
                      seed=seed, beta=beta, delete=delete)
