"""Batches of windows (tasks/generate.py ``generate_windows``): track k of B windows in one
batched integration, the unbatched window its batch of one.

Real components: the tiny bundle (random weights), FoleyWorld footage written with ffmpeg,
SQLite, the asset stages that make the jobs. Checked: a batch of two gives each window the
tracks the unbatched path gives (same seeds; samples within the tolerance
models/generation/batched.py documents, through 24-bit FLAC and a second track guided by the
first), records its batch size, reruns as a no-op, resumes a half-recorded batch with the
bits the uninterrupted batch made, and a window that cannot be read fails alone, named.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from sqlalchemy import delete, select

from flows.generate_window import window_batches
from sql.schema import Track
from sql.session import session_scope
from tasks import asset_stages
from tasks.config import ConfigError, load_settings, settings_from_json
from tasks.generate import WindowsFailed, generate_window, generate_windows, run_windows
from tasks.runs import engine_for
from tasks.ffmpeg_bin import run_ffmpeg
from tests.flows.conftest import tiny_bundle  # noqa: F401 (fixture)

# A 3-s clip in 2-s windows overlapping by 1 s: two windows of one length (kept short: the
# default run's budget).
ASSET = "clip.mp4"
# batched.py's waveform tolerance. Measured here: 2.4e-7 (track 1), 1.9e-6 (track 2, guided
# by track 1 read back from its FLAC) on samples of peak ~0.017.
ATOL = 1e-4


def _settings(data: Path, bundle: Path) -> dict[str, Any]:
    return load_settings({"data_dir": data, "bundle": bundle, "steps": 3, "tracks": 2,
                          "window_s": 2.0, "overlap_s": 1.0}).to_json()


@pytest.fixture(scope="module")
def footage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("clip")
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc=size=96x64:rate=25:duration=3", "-c:v", "libx264",
                "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-y", str(out / ASSET)])
    return out


def _jobs(footage: Path, s: dict[str, Any], n: int = 2) -> list[dict[str, Any]]:
    lib = Path(s["data_dir"]).parent / "lib"
    lib.mkdir(parents=True, exist_ok=True)
    shutil.copy(footage / ASSET, lib / ASSET)
    (lib / f"{ASSET}.prompts.txt").write_text("a dog barks\nrain falls\n")
    asset = asset_stages.ingest_asset(str(lib / ASSET), s, None)
    windows = asset_stages.plan_windows(asset, s)
    return asset_stages.propose_prompts(asset, windows, s)[:n]


def _tracks(s: dict[str, Any]) -> list[Track]:
    with session_scope(engine_for(s)) as db:
        rows = db.execute(select(Track).order_by(Track.window_id, Track.order, Track.version)).scalars()
        out = list(rows)
        db.expunge_all()
    return out


def _wave(uri: str) -> np.ndarray:
    return sf.read(uri, dtype="float32")[0]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, tiny_bundle: Path,  # noqa: F811
         footage: Path) -> dict[str, Any]:
    """The same two windows, unbatched (each a batch of one) and as one batch of two."""
    root = tmp_path_factory.mktemp("batches")
    single = _settings(root / "single" / "data", tiny_bundle)
    batched = _settings(root / "batched" / "data", tiny_bundle)
    jobs_1, jobs_2 = _jobs(footage, single), _jobs(footage, batched)
    for job in jobs_1:
        generate_window(job, settings_from_json(single))
    states = generate_windows(jobs_2, settings_from_json(batched))
    return {"single": single, "batched": batched, "jobs": jobs_2, "states": states}


def test_a_batch_of_two_gives_each_window_its_unbatched_tracks(runs: dict[str, Any]) -> None:
    assert len(window_batches(runs["jobs"], 2)) == 1  # one batch: same length, one asset
    assert [w.error for w in runs["states"]] == [None, None]
    one, two = _tracks(runs["single"]), _tracks(runs["batched"])
    assert len(one) == len(two) == 4  # 2 windows × 2 tracks
    for a, b in zip(one, two):
        assert (a.order, a.version, a.seed, a.prompt_text) == (b.order, b.version, b.seed, b.prompt_text)
        assert (a.batch_size, b.batch_size) == (1, 2)
        wa, wb = _wave(a.stem_uri), _wave(b.stem_uri)
        assert np.abs(wa).max() > 1e-3  # real audio, not silence compared with silence
        np.testing.assert_allclose(wb, wa, atol=ATOL, rtol=0)
    # the two windows of the batch did not get each other's audio
    w0, w1 = (_wave(t.stem_uri) for t in two[:3:2])
    assert np.abs(w0 - w1).max() > 100 * ATOL


def test_rerunning_a_batch_is_a_no_op(runs: dict[str, Any]) -> None:
    before = [(t.id, t.stem_sha256, t.finished_at) for t in _tracks(runs["batched"])]
    refs = run_windows(runs["jobs"], runs["batched"], "0.0+0.1")
    assert [(t.id, t.stem_sha256, t.finished_at) for t in _tracks(runs["batched"])] == before
    assert sorted(r["id"] for r in refs) == sorted(b[0] for b in before)


def test_a_batch_resumed_after_a_kill_makes_the_same_bits(runs: dict[str, Any]) -> None:
    s = runs["batched"]
    last = _tracks(s)[-1]  # window 2's track 2: as if the agent died before recording it
    sha, uri = last.stem_sha256, Path(last.stem_uri)
    with session_scope(engine_for(s)) as db:
        db.execute(delete(Track).where(Track.id == last.id))
    uri.unlink()
    states = generate_windows(copy.deepcopy(runs["jobs"]), settings_from_json(s))
    assert [w.error for w in states] == [None, None]
    redone = _tracks(s)[-1]
    # window 1's track 2 was integrated with it again (not recorded twice), so the group is
    # the uninterrupted run's: byte-identical, not merely within tolerance
    assert len(_tracks(s)) == 4 and redone.batch_size == 2
    assert redone.stem_sha256 == sha


def test_a_window_that_cannot_be_read_fails_alone(runs: dict[str, Any],
                                                  tmp_path: Path) -> None:
    s = _settings(tmp_path / "data", Path(runs["batched"]["bundle"]))
    good = copy.deepcopy(runs["jobs"])
    good_copy = _jobs_from(good, tmp_path, s)
    bad = {**good_copy[1], "path": str(tmp_path / "gone.mkv")}
    with pytest.raises(WindowsFailed) as err:
        run_windows([good_copy[0], bad], s, "0.0+0.1")
    msg = str(err.value)
    assert "1 of 2 windows failed (1 generated)" in msg
    assert f"window {bad['scene_index']}.{bad['window_index']}:" in msg and "gone.mkv" in msg
    tracks = _tracks(s)
    assert {t.window_id for t in tracks} == {good_copy[0]["window_id"]}  # the other one made
    assert [t.order for t in tracks] == [1, 2]


def _jobs_from(jobs: list[dict[str, Any]], tmp: Path, s: dict[str, Any]) -> list[dict[str, Any]]:
    """The jobs again, recorded in another database (the same file and prompts)."""
    lib = Path(jobs[0]["path"].removeprefix("file://")).parent
    asset = asset_stages.ingest_asset(str(lib / ASSET), s, None)
    return asset_stages.propose_prompts(asset, asset_stages.plan_windows(asset, s), s)[:2]


def test_the_batch_size_is_the_setting_or_the_device_s_default() -> None:
    assert load_settings(environ={}).batch_size == 1  # the CPU: batching measured no faster
    assert load_settings({"device": "cuda:0"}, environ={}).batch_size == 4
    assert load_settings(environ={"STEPFOLEY_GPU_BATCH": "2", "STEPFOLEY_DEVICE": "cuda"}).batch_size == 2
    with pytest.raises(ConfigError, match="gpu_batch"):
        load_settings(environ={"STEPFOLEY_GPU_BATCH": "-1"})
    # B changes no seed: it is not part of the configuration hash
    assert load_settings({"gpu_batch": 4}, environ={}).generation_hash() == \
        load_settings(environ={}).generation_hash()
