"""The GPU unit: one window's tracks, in order, with Negative Audio Guidance."""

from __future__ import annotations

from typing import Any

from prefect import flow

from tasks import runs, stages
from tasks.prefect_tasks import generate_window_local_task, generate_window_task


@flow(name="generate-scene", flow_run_name="window {job[scene_index]}.{job[window_index]}",
      log_prints=False)
def generate_scene(job: dict[str, Any], settings: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Generate (or resume) the tracks of one window; each track is recorded as it finishes."""
    s = runs.resolve_settings(settings)
    return generate_window_task(job, s)


def dispatch_generation(job: dict[str, Any], settings: dict[str, Any]) -> list[dict[str, Any]]:
    """Run on the GPU deployment when one is configured, in this process otherwise.

    In process, the window is one untagged task of the calling flow, not a ``generate-scene``
    subflow: a subflow per window cost ~1.4 s of Prefect bookkeeping on the 2-core box (flow
    run creation, state round trips, the heartbeat thread's join) and the `gpu` tag another
    ~0.4 s (a concurrency-slot request), together a third of the wall time of a 2-minute asset
    (benchmarks/bench_orchestration.py, docs/performance.md)."""
    deployment = settings.get("gpu_deployment")
    if not deployment:
        return generate_window_local_task(job, settings)
    from prefect.deployments import run_deployment

    run = run_deployment(deployment, parameters={"job": job, "settings": settings},
                         timeout=None, as_subflow=True)
    if not run.state or not run.state.is_completed():
        raise RuntimeError(f"GPU run {run.id} for window {job['scene_index']}.{job['window_index']} "
                           f"ended {run.state.name if run.state else 'without a state'}")
    # The database, not Prefect's result storage, carries the tracks across machines.
    return stages.window_tracks(job["scene_id"], settings)
