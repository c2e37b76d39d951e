"""Regenerate one track (or take it out of the mix), then re-mix and re-mux its asset."""

from __future__ import annotations

from typing import Any

from prefect import flow

from tasks import asset_stages, runs
from tasks.regenerate_track import check_take
from tasks.prefect_tasks import mix_asset_task, mux_asset_task, regenerate_task
from tasks.warm_imports import import_pipeline_modules


@flow(name="regenerate-track", flow_run_name="regenerate {asset} scene {scene} track {track}",
      log_prints=False)
def regenerate_track(asset: str, scene: int, track: int, prompt: str | None = None,
                     seed: int | None = None, beta: float | None = None, delete: bool = False,
                     settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """The review loop: a new version of track ``track`` of shot ``scene`` against the others."""
    import_pipeline_modules()  # the dashboard runs this flow on job threads (#21)
    s = runs.resolve_settings(settings)
    # 0. the operator's values, checked before anything starts
    take = check_take(runs.as_settings(s), prompt=prompt, seed=seed, beta=beta)
    prompt, seed, beta = take.prompt, take.seed, take.beta
    # 1. provenance: a run of kind "regenerate" with the operator's parameters
    run_id = runs.start_run("regenerate", {"asset": asset, "scene": scene, "track": track,
                                           "prompt": prompt, "seed": seed, "beta": beta,
                                           "delete": delete}, s)
    # 2. the new take (or the deletion), in every window of the shot
    result = regenerate_task(asset, scene, track, s, prompt=prompt, seed=seed, beta=beta,
                             delete=delete)
    # 3. re-mix and re-mux with the current tracks
    asset_row = asset_stages.asset_ref(result["asset_id"], s)
    mix = mix_asset_task(asset_row, s)
    mux_asset_task(asset_row, mix, s)
    # 4. close the run
    runs.finish_run(run_id, [{"status": "done"}], s)
    return result
