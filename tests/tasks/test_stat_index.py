"""The stat index (tasks/stat_index.py, tasks/known_files.py): a rerun reads only what changed.

Files are real MP4s made with ffmpeg; discovery runs for real on SQLite and PostgreSQL. That an
unchanged file is neither re-hashed nor re-probed is shown on the bytes themselves: the file is
overwritten in place (same inode, same size) with other content and its mtime put back, and the
rerun keeps the recorded asset; change only the mtime and the rerun reads it again.
"""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy import func, select

from sql.repository import set_asset_status
from sql.schema import AssetPath, Failure, RunAsset
from tasks import asset_stages, runs
from tasks.config import load_settings
from tasks.ffmpeg_bin import run_ffmpeg
from tasks.media_paths import to_uri
from tasks.stat_index import RACY_NS, FileStat, signed64, unchanged

HOUR_NS = 3600 * 10**9


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    out = tmp_path_factory.mktemp("clip") / "base.mp4"
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc=size=64x36:rate=25:duration=1", "-c:v", "libx264",
                "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-movflags", "+faststart", "-y",
                str(out)])
    return out.read_bytes()


def _variant(clip: bytes, i: int) -> bytes:
    """The clip with a trailing ISO-BMFF ``free`` box carrying ``i``: valid, its own sha256."""
    return clip + struct.pack(">I4sQ", 16, b"free", i)


def _library(root: Path, clip: bytes, n: int, age_ns: int = HOUR_NS) -> Path:
    root.mkdir(parents=True)
    then = time.time_ns() - age_ns
    for i in range(n):
        p = root / f"clip{i}.mp4"
        p.write_bytes(_variant(clip, i))
        os.utime(p, ns=(then, then))
    return root


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> dict[str, Any]:
    return load_settings({"data_dir": tmp_path / "data", "database_url": db_url}).to_json()


def _discover(lib: Path, s: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    run_id = runs.start_run("test", {"library": str(lib)}, s)
    return run_id, asset_stages.discover(to_uri(lib), s, run_id)


def _all_done(todo: list[dict[str, Any]], s: dict[str, Any]) -> None:
    with runs.session(s) as db:
        for item in todo:
            set_asset_status(db, item["asset_id"], "done")


def _count(s: dict[str, Any], model: type, **where: Any) -> int:
    with runs.session(s) as db:
        q = select(func.count()).select_from(model).filter_by(**where)
        return int(db.execute(q).scalar_one())


def _rewrite_keeping_stat(path: Path, data: bytes) -> None:
    """New bytes of the same length in place (same inode), mtime put back as it was."""
    st = path.stat()
    assert len(data) == st.st_size
    with open(path, "r+b") as fh:
        fh.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (st.st_ino, st.st_size, st.st_mtime_ns)


# ------------------------------------------------------------------ the key, without a database
def test_key_is_size_mtime_inode_device_and_recent_files_are_racy(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"x" * 10)
    fresh = FileStat.read(p)
    assert fresh is not None and fresh.racy  # just written: within RACY_NS of the stat
    assert set(fresh.columns().values()) == {None}  # a racy stat is never recorded
    old = time.time_ns() - RACY_NS - 10**9
    os.utime(p, ns=(old, old))
    st = FileStat.read(p)
    assert st is not None and not st.racy and st.mtime_ns == old and st.size == 10
    rec = st.columns()
    assert unchanged(rec, FileStat.read(p))
    for col, delta in (("size_bytes", 1), ("mtime_ns", 1), ("inode", 1), ("device", 1)):
        assert not unchanged({**rec, col: rec[col] + delta}, st), col  # type: ignore[operator]
    assert not unchanged(None, st) and not unchanged(rec, None)
    assert not unchanged({**rec, "mtime_ns": None}, st)
    assert FileStat.read(tmp_path / "missing") is None


def test_signed64_keeps_equality_of_unsigned_numbers() -> None:
    assert signed64(5) == 5 and signed64(2**63 - 1) == 2**63 - 1
    assert signed64(2**63) == -(2**63) and signed64(2**64 - 1) == -1
    assert len({signed64(x) for x in (0, 1, 2**63, 2**64 - 1, 2**63 - 1)}) == 5


# ------------------------------------------------------------------ discovery on a real database
def test_unchanged_file_is_not_read_again_and_a_touched_one_is(tmp_path: Path, clip: bytes,
                                                              settings: dict[str, Any]) -> None:
    lib = _library(tmp_path / "lib", clip, 3)
    _, todo = _discover(lib, settings)
    assert len(todo) == 3
    _all_done(todo, settings)
    assert _count(settings, AssetPath) == 3
    # 1. other bytes (not even a video), same size, same inode, same mtime: the rerun trusts the
    #    recorded sha256: nothing to do, and no probe (it would record a failure) and no hash
    target = lib / "clip1.mp4"
    _rewrite_keeping_stat(target, b"\0" * target.stat().st_size)
    run_id, again = _discover(lib, settings)
    assert again == []
    assert _count(settings, Failure) == 0
    assert _count(settings, RunAsset, run_id=run_id) == 0  # an unchanged done file: no write
    # 2. the mtime alone changes: read again, found not to be a video
    later = target.stat().st_mtime_ns + 10**9
    os.utime(target, ns=(later, later))
    run_id, again = _discover(lib, settings)
    assert again == []
    assert _count(settings, Failure, run_id=run_id, uri=to_uri(target)) == 1


def test_a_modified_file_is_picked_up(tmp_path: Path, clip: bytes, settings: dict[str, Any]) -> None:
    lib = _library(tmp_path / "lib", clip, 3)
    _, todo = _discover(lib, settings)
    _all_done(todo, settings)
    old = {t["path"]: t["sha256"] for t in todo}
    # a new version of clip2 (other content, other size), and one replaced by rename (new
    # inode, same size and mtime as the old file)
    grown = lib / "clip2.mp4"
    grown.write_bytes(_variant(clip, 22) + b"\0" * 8)
    renamed = lib / "clip0.mp4"
    st = renamed.stat()
    tmp = lib / ".clip0.tmp"
    tmp.write_bytes(_variant(clip, 10))
    os.utime(tmp, ns=(st.st_mtime_ns, st.st_mtime_ns))
    os.replace(tmp, renamed)
    assert renamed.stat().st_ino != st.st_ino and renamed.stat().st_size == st.st_size
    _, again = _discover(lib, settings)
    assert sorted(t["path"] for t in again) == sorted([to_uri(grown), to_uri(renamed)])
    assert all(t["sha256"] != old[t["path"]] for t in again)


def test_a_file_modified_just_before_the_walk_is_not_trusted(tmp_path: Path, clip: bytes,
                                                             settings: dict[str, Any]) -> None:
    lib = _library(tmp_path / "lib", clip, 2, age_ns=0)  # written now: racy
    _, todo = _discover(lib, settings)
    _all_done(todo, settings)
    with runs.session(settings) as db:
        assert set(db.execute(select(AssetPath.mtime_ns)).scalars()) == {None}
    # same-size new content within the same clock tick would keep mtime: so it is re-read
    target = lib / "clip0.mp4"
    _rewrite_keeping_stat(target, _variant(clip, 7))
    _, again = _discover(lib, settings)
    assert [t["path"] for t in again] == [to_uri(target)]


def test_unchanged_files_not_yet_done_stay_to_do_without_a_read(tmp_path: Path, clip: bytes,
                                                               settings: dict[str, Any]) -> None:
    lib = _library(tmp_path / "lib", clip, 2)
    _, todo = _discover(lib, settings)
    _all_done(todo[:1], settings)
    rest = todo[1]
    _rewrite_keeping_stat(Path(rest["path"]), b"\0" * Path(rest["path"]).stat().st_size)
    run_id, again = _discover(lib, settings)
    assert again == [rest]  # the recorded asset, not a failure of the zeroed bytes
    assert _count(settings, Failure) == 0
    assert _count(settings, RunAsset, run_id=run_id) == 1  # taken on by this run


def test_remote_library_is_indexed_by_its_uri_and_the_staged_copy(tmp_path: Path, clip: bytes,
                                                                   sqlite_url: str) -> None:
    import uuid

    import fsspec

    s = load_settings({"data_dir": tmp_path / "data", "database_url": sqlite_url}).to_json()
    fs, root = fsspec.filesystem("memory"), f"/lib-{uuid.uuid4().hex[:8]}"
    lib = f"memory:/{root}"
    try:
        fs.pipe(f"{root}/a.mp4", _variant(clip, 1))
        fs.pipe(f"{root}/b.mp4", _variant(clip, 2))
        _, todo = _discover(lib, s)  # staged just now: racy, not recorded yet
        staged = {Path(t["path"]).name: Path(t["path"]) for t in todo}
        then = time.time_ns() - HOUR_NS
        for p in staged.values():
            os.utime(p, ns=(then, then))
        _all_done(todo, s)
        _discover(lib, s)  # hashed again (nothing recorded), now recorded
        with runs.session(s) as db:
            rows = dict(db.execute(select(AssetPath.uri, AssetPath.mtime_ns)).all())
        assert rows[f"{lib}/a.mp4"] == then  # the source uri's row holds the staged copy's stat
        _rewrite_keeping_stat(staged["a.mp4"], b"\0" * staged["a.mp4"].stat().st_size)
        assert _discover(lib, s)[1] == []  # trusted: no hash, no probe of the zeroed copy
        fs.pipe(f"{root}/b.mp4", _variant(clip, 3))  # new remote content: a new staged copy
        (changed,) = _discover(lib, s)[1]
        assert Path(changed["path"]).name == "b.mp4" and Path(changed["path"]) != staged["b.mp4"]
    finally:
        fs.rm(root, recursive=True)


# ------------------------------------------------------------------ the flow: no task per done asset
@pytest.fixture(scope="module")
def harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=None):
        yield


def test_noop_backfill_starts_no_task_run_per_asset(harness: None, tmp_path: Path, clip: bytes,
                                                    sqlite_url: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.backfill import backfill_library

    s = load_settings({"data_dir": tmp_path / "data", "database_url": sqlite_url}).to_json()
    lib = _library(tmp_path / "lib", clip, 4)
    _, todo = _discover(lib, s)
    _all_done(todo, s)
    state = backfill_library(to_uri(lib), s, return_state=True)
    summary = state.result()
    assert summary["counts"] == {} and summary["status"] == "completed", summary
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
        flow_runs = client.read_flow_runs(limit=50)
    names = sorted(r.name.rsplit("-", 1)[0] for r in task_runs)
    assert names == ["discover", "report-run"], names
    assert not [r for r in flow_runs if r.name.startswith("asset ")]  # no process-asset run
