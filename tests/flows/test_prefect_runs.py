"""The backfill flow in-process under Prefect's test harness: the progress, table and summary
artifacts it publishes, and the stage cache (a rerun skips finished stages; a changed config
hash, or a result whose files are gone, runs the stage again)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest
from prefect import flow

from tasks.config import load_settings
from tasks.media_paths import to_uri
from tests.flows.conftest import make_library

PROMPTS = {"three-shots.mp4": ["a dog barks", "rain falls"], "with-original.mp4": ["footsteps", "wind"]}


@pytest.fixture(scope="module")
def harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=None):
        yield


def _settings(data: Path, bundle: Path, **over: Any) -> dict[str, Any]:
    return load_settings({"data_dir": data, "bundle": bundle, "steps": 3, "tracks": 2,
                          "threads": 1, **over}).to_json()


def _task_runs(exclude: set[Any] = frozenset()) -> list[Any]:  # type: ignore[assignment]
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(limit=200)
    return [r for r in runs if r.id not in exclude]


def _states(runs: list[Any], name: str) -> list[str]:
    return sorted(r.state_name for r in runs if r.name.rsplit("-", 1)[0] == name)


@flow(name="one-stage", validate_parameters=False)
def one_stage(stage: str, args: list[Any]) -> tuple[str, Any]:
    """Run one stage task and report its final state's name with its result."""
    from tasks import prefect_tasks

    fn = {"scenes": prefect_tasks.plan_windows_task, "mix": prefect_tasks.mix_asset_task,
          "mux": prefect_tasks.mux_asset_task}[stage]
    state = fn(*args, return_state=True)
    return state.name, state.result()


def test_backfill_publishes_progress_table_and_summary_artifacts(
        harness: None, tmp_path: Path, tiny_bundle: Path, demo_footage: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, \
        ArtifactFilterKey

    from flows.backfill import backfill_library

    lib = make_library(demo_footage, tmp_path / "lib", ["three-shots.mp4", "with-original.mp4"],
                       PROMPTS)
    state = backfill_library(to_uri(lib), _settings(tmp_path / "data", tiny_bundle),
                             return_state=True)
    summary = state.result()
    assert summary["counts"] == {"done": 2}, summary
    run_id = summary["run_id"]
    keys = {k: f"stepfoley-{k}-{run_id}" for k in ("progress", "run", "summary")}
    this_run = ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
    with get_client(sync_client=True) as client:
        found = {k: client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[key]), flow_run_id=this_run)) for k, key in keys.items()}
    assert all(len(v) == 1 for v in found.values()), found
    progress, table, markdown = found["progress"][0], found["run"][0], found["summary"][0]
    assert progress.type == "progress" and float(progress.data) == 100.0
    assert progress.description == "2/2 assets finished"
    assert progress.updated > progress.created  # moved as the assets finished
    assert table.type == "table" and "three-shots.mp4" in str(table.data)
    assert markdown.type == "markdown" and "2 done, 0 failed" in str(markdown.data)


def test_rerun_hits_the_stage_cache_and_a_changed_config_misses_it(
        harness: None, tmp_path: Path, tiny_bundle: Path, demo_footage: Path) -> None:
    from flows.backfill import backfill_library
    from tasks import asset_stages

    lib = make_library(demo_footage, tmp_path / "lib", ["three-shots.mp4"], PROMPTS)
    data = tmp_path / "data"
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    # 1. every stage up to the mix finishes, then the mux fails (its output dir cannot exist):
    #    the asset is failed, but the finished stages' results are already in the cache
    before = {r.id for r in _task_runs()}
    first = backfill_library(to_uri(lib), _settings(data, tiny_bundle, out_dir=blocker / "out"))
    assert first["counts"] == {"failed": 1}, first
    runs1 = _task_runs(before)
    assert _states(runs1, "scenes") == ["Completed"] and _states(runs1, "mux") == ["Failed"]
    records = {p.parent.name for p in (data / "cache").rglob("*") if p.is_file()}
    assert records == {"scenes", "prompts", "generate-window", "mix"}
    assert all(p.stat().st_size < 16_000 for p in (data / "cache").rglob("*") if p.is_file())
    # 2. the rerun skips every finished stage (no Prefect server state needed: the records are
    #    files in the data dir) and only runs what is left
    s = _settings(data, tiny_bundle)
    before = {r.id for r in _task_runs()}
    second = backfill_library(to_uri(lib), s)
    assert second["counts"] == {"done": 1}, second
    runs2 = _task_runs(before)
    for stage in ("scenes", "prompts", "mix"):
        assert _states(runs2, stage) == ["Cached"], (stage, _states(runs2, stage))
    gen = _states(runs2, "generate-window")
    assert len(gen) == 3 and set(gen) == {"Cached"}, gen
    assert _states(runs2, "mux") == ["Completed"] and _states(runs2, "ingest") == ["Completed"]
    # 3. same inputs → cached; a changed config hash → computed again
    asset = asset_stages.ingest_asset(to_uri(lib / "three-shots.mp4"), s, None)
    assert one_stage("scenes", [asset, s])[0] == "Cached"
    other = _settings(data, tiny_bundle, beta=2.0)
    assert load_settings(other).generation_hash() != load_settings(s).generation_hash()
    name, windows = one_stage("scenes", [asset, other])
    assert name == "Completed" and len(windows) == 3
    # 4. a cached result whose file is gone is not used: the stage runs and rewrites it
    name, mix = one_stage("mix", [asset, s])
    assert name == "Cached"
    name, out = one_stage("mux", [asset, mix, s])
    assert name == "Cached" and Path(out["uri"]).is_file()
    os.unlink(out["uri"])
    name, again = one_stage("mux", [asset, mix, s])
    assert name == "Completed" and Path(again["uri"]).is_file()
    assert one_stage("mux", [asset, mix, s])[0] == "Cached"
