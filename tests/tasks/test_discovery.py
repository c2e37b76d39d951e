"""tasks/discovery.py: ``has_work`` answers what the run's discovery would find, from stats.

Real MP4s (ffmpeg), real discovery on SQLite and PostgreSQL. ``has_work`` decides whether a
`stepfoley run` imports the pipeline and preloads the models, so a wrong "no" would only cost
the preload (the run's own discovery still processes the file), and a wrong "yes" the ~10 s
this was written to save: both directions are checked, and that it writes nothing.
"""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from sql.repository import set_asset_status
from sql.schema import Asset, AssetPath
from tasks import discovery, runs
from tasks.config import load_settings
from tasks.ffmpeg_bin import run_ffmpeg
from tasks.media_paths import to_uri

HOUR_S = 3600.0


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    out = tmp_path_factory.mktemp("clip") / "base.mp4"
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc=size=64x36:rate=25:duration=1", "-c:v", "libx264",
                "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-movflags", "+faststart", "-y",
                str(out)])
    return out.read_bytes()


def _write(path: Path, clip: bytes, i: int, age_s: float = HOUR_S) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(clip + struct.pack(">I4sQ", 16, b"free", i))  # valid MP4, own sha256
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> dict[str, Any]:
    return load_settings({"data_dir": tmp_path / "data", "database_url": db_url}).to_json()


def _discover_all_done(lib: Path, s: dict[str, Any]) -> list[dict[str, Any]]:
    run_id = runs.start_run("test", {"library": str(lib)}, s)
    todo = discovery.discover(to_uri(lib), s, run_id)
    with runs.session(s) as db:
        for item in todo:
            set_asset_status(db, item["asset_id"], "done")
    return todo


def _rows(s: dict[str, Any]) -> tuple[int, int, list[Any]]:
    with runs.session(s) as db:
        return (int(db.execute(select(func.count()).select_from(Asset)).scalar_one()),
                int(db.execute(select(func.count()).select_from(AssetPath)).scalar_one()),
                sorted(db.execute(select(AssetPath.last_seen_at)).scalars().all(), key=str))


def test_has_work_follows_what_discovery_would_do(tmp_path: Path, clip: bytes,
                                                  settings: dict[str, Any]) -> None:
    lib = tmp_path / "lib"
    a, b = _write(lib / "a.mp4", clip, 0), _write(lib / "sub" / "b.mp4", clip, 1)
    where = to_uri(lib)
    assert discovery.has_work(where, settings)  # nothing registered yet
    assert len(_discover_all_done(lib, settings)) == 2
    before = _rows(settings)
    assert not discovery.has_work(where, settings)  # all done, all unchanged
    assert _rows(settings) == before  # a look, not a write (not even last_seen_at)
    (lib / "notes.txt").write_text("not a video")
    assert not discovery.has_work(where, settings)

    # a touched file must be read again: work (the run's discovery re-hashes it)
    then = time.time() - HOUR_S / 2
    os.utime(b, (then, then))
    assert discovery.has_work(where, settings)
    assert _discover_all_done(lib, settings) == []  # same bytes: done already, stat re-recorded
    assert not discovery.has_work(where, settings)

    # a new file, and a known one whose asset is not done
    c = _write(lib / "c.mp4", clip, 2)
    assert discovery.has_work(where, settings)
    assert discovery.has_work(where, settings, paths=[str(c)])
    assert not discovery.has_work(where, settings, paths=[str(a)])
    todo = _discover_all_done(lib, settings)
    assert [t["path"] for t in todo] == [to_uri(c)]
    assert not discovery.has_work(where, settings)
    with runs.session(settings) as db:
        set_asset_status(db, todo[0]["asset_id"], "failed", error="for the test")
    assert discovery.has_work(where, settings)


def test_remote_library_is_assumed_to_have_work(settings: dict[str, Any]) -> None:
    assert discovery.has_work("memory://nowhere/lib", settings)
