"""Libraries behind fsspec URIs: discovery, staging into the content-addressed cache, records.

The remote side is fsspec's in-process ``memory://`` file system holding real MP4 bytes made
here with ffmpeg (lavfi); ``file://`` is a local directory.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Iterator

import fsspec
import pytest

from tasks import library_fs
from tasks.config import Settings
from tasks.errors import MediaError
from tasks.ffmpeg_bin import run_ffmpeg
from tasks.ingest import DiscoveredFile, discover, hash_and_probe, ingest_path


def _mp4(path: Path, source: str = "testsrc2") -> bytes:
    run_ffmpeg(["-y", "-f", "lavfi", "-i", f"{source}=size=64x48:rate=25:duration=1",
                "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)])
    return path.read_bytes()


@pytest.fixture
def videos(tmp_path: Path) -> tuple[bytes, bytes]:
    return _mp4(tmp_path / "a.mp4"), _mp4(tmp_path / "b.mp4", "smptebars")


@pytest.fixture
def memory_lib() -> Iterator[str]:
    """A fresh root in fsspec's process-wide memory file system (removed afterwards)."""
    root = f"lib-{uuid.uuid4().hex[:8]}"
    yield f"memory://{root}"
    fs = fsspec.filesystem("memory")
    if fs.exists(f"/{root}"):
        fs.rm(f"/{root}", recursive=True)


def _put(lib: str, name: str, data: bytes | None) -> None:
    """Write (or, with None, delete) one file of a ``memory://`` library."""
    fs = fsspec.filesystem("memory")
    path = f"/{lib.removeprefix('memory://')}/{name}"
    if data is None:
        fs.rm(path)
    else:
        fs.pipe(path, data)


def _files(cache: Path) -> list[Path]:
    return sorted(p for p in cache.rglob("*") if p.is_file() and "index" not in p.parts
                  and not p.name.startswith("."))


def test_memory_library_is_discovered_staged_and_judged_by_content(
        tmp_path: Path, videos: tuple[bytes, bytes], memory_lib: str) -> None:
    good, other = videos
    _put(memory_lib, "shots/clip one.mp4", good)
    _put(memory_lib, "shots/clip one.mp4.prompts.txt", b"rain\n")  # sidecar: not a candidate
    _put(memory_lib, "raw/take7", other)  # no extension: a candidate by its ftyp signature
    _put(memory_lib, "notes.txt", b"not a video at all\n" * 10)  # never a candidate: not staged
    _put(memory_lib, "fake.mp4", b"this is text with a video name\n" * 10)  # staged, then rejected
    _put(memory_lib, ".hidden/x.mp4", good)
    cache = tmp_path / "cache"

    found = list(discover(memory_lib, cache_dir=cache))
    assert all(isinstance(f, DiscoveredFile) for f in found)
    assert [f.uri for f in found] == [f"{memory_lib}/fake.mp4", f"{memory_lib}/raw/take7",
                                      f"{memory_lib}/shots/clip one.mp4"]
    for f in found:
        sha = hashlib.sha256(f.path.read_bytes()).hexdigest()
        # content-addressed: <cache>/<sha[:2]>/<sha>/<original name>
        assert f.path == cache / sha[:2] / sha / f.uri.rsplit("/", 1)[-1]
        assert f.size_bytes == f.path.stat().st_size
    clip = next(f.path for f in found if f.uri.endswith("clip one.mp4"))
    sidecar = clip.with_name(clip.name + ".prompts.txt")  # staged with its video, not as a candidate
    assert sidecar.read_bytes() == b"rain\n"
    # nothing else staged, no partial copies
    assert _files(cache) == sorted([*(f.path for f in found), sidecar])
    assert not list((cache / "tmp").iterdir())

    by_name = {f.uri.rsplit("/", 1)[-1]: f for f in found}
    ok = hash_and_probe(by_name["clip one.mp4"])
    assert ok.asset_fields()["uri"] == f"{memory_lib}/shots/clip one.mp4"
    assert ok.sha256 == hashlib.sha256(good).hexdigest() and ok.probe.width == 64
    assert hash_and_probe(by_name["take7"]).sha256 == hashlib.sha256(other).hexdigest()
    # a later stage sees only the staged path: the original URI is read back from the cache
    assert ingest_path(by_name["clip one.mp4"].path).asset_fields()["uri"] == f"{memory_lib}/shots/clip one.mp4"
    with pytest.raises(MediaError) as err:
        hash_and_probe(by_name["fake.mp4"])
    msg = str(err.value)
    assert msg.startswith(f"{memory_lib}/fake.mp4: not a readable video") and "\n" not in msg
    assert str(cache) not in msg and err.value.path == f"{memory_lib}/fake.mp4"


def test_restaging_is_idempotent_deduplicated_and_follows_changes(
        tmp_path: Path, videos: tuple[bytes, bytes], memory_lib: str) -> None:
    good, other = videos
    _put(memory_lib, "a/clip.mp4", good)
    _put(memory_lib, "b/clip.mp4", good)  # same name and content elsewhere: one staged copy
    cache = tmp_path / "cache"

    first = list(discover(memory_lib, cache_dir=cache))
    assert len(first) == 2 and first[0].path == first[1].path
    stamp = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in _files(cache)}
    assert len(stamp) == 1
    again = list(discover(memory_lib, cache_dir=cache))
    assert again == first
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in _files(cache)} == stamp  # not rewritten
    staged = library_fs.stage(f"{memory_lib}/a/clip.mp4", cache)
    assert not staged.copied and staged.path == first[0].path  # index hit: nothing read again

    _put(memory_lib, "a/clip.mp4", other)  # the remote file changes: staged anew under its new hash
    changed = list(discover(memory_lib, cache_dir=cache))
    assert changed[0].path.parent.name == hashlib.sha256(other).hexdigest()
    assert changed[1].path == first[1].path and first[1].path.is_file()

    first[1].path.unlink()  # a lost copy is staged again, same address
    assert list(discover(memory_lib, cache_dir=cache))[1].path.read_bytes() == good
    assert not list((cache / "tmp").iterdir())


def test_file_uri_library_is_the_local_library_used_in_place(
        tmp_path: Path, videos: tuple[bytes, bytes]) -> None:
    good, _ = videos
    lib = tmp_path / "my lib"
    (lib / "sub").mkdir(parents=True)
    (lib / "sub" / "clip.mp4").write_bytes(good)
    (lib / "notes.bin").write_bytes(os.urandom(4000))  # no video name, no signature: not a candidate
    (lib / "fake.mp4").write_bytes(b"text, not video\n" * 50)
    cache = tmp_path / "cache"

    local = list(discover(lib))
    via_uri = list(discover(f"file://{lib}", cache_dir=cache))
    assert via_uri == local == list(discover(f"file://{lib}", cache_dir=cache))
    assert [f.path.name for f in via_uri] == ["fake.mp4", "clip.mp4"] and all(f.uri is None for f in via_uri)
    assert not cache.exists()  # local files are used in place, never copied
    results = {}
    for f in via_uri:
        try:
            results[f.path.name] = hash_and_probe(f).asset_fields()["uri"]
        except MediaError as err:
            results[f.path.name] = str(err)
    assert results["clip.mp4"] == str(lib / "sub" / "clip.mp4")
    assert "fake.mp4: not a readable video" in results["fake.mp4"]


def test_library_uri_errors_are_one_line_failures(tmp_path: Path) -> None:
    missing = list(discover(f"memory://nothing-{uuid.uuid4().hex[:8]}", cache_dir=tmp_path))
    assert len(missing) == 1 and isinstance(missing[0], MediaError)
    assert str(missing[0]).endswith(": library not found")
    # not a protocol fsspec knows: a (relative) path, as before
    assert library_fs.is_uri("nosuchproto://x") is False
    assert "library not found" in str(list(discover("nosuchproto://x"))[0])
    assert library_fs.is_uri("memory://x") and library_fs.is_uri(f"file://{tmp_path}")
    assert not library_fs.is_uri(str(tmp_path)) and not library_fs.is_uri(tmp_path)


def test_stage_discovery_records_original_uris(tmp_path: Path, videos: tuple[bytes, bytes],
                                               memory_lib: str) -> None:
    from sql.repository import find_asset_by_uri, get_asset, list_failures
    from tasks import asset_stages, runs

    good, _ = videos
    _put(memory_lib, "clip.mp4", good)
    _put(memory_lib, "broken.mkv", b"\x1a\x45\xdf\xa3" + b"\x00" * 300)  # EBML magic, no video
    settings = runs.resolve_settings(Settings(data_dir=tmp_path / "data",
                                              database_url=f"sqlite:///{tmp_path / 'db.sqlite'}"))
    run_id = runs.start_run("test", {}, settings)

    todo = asset_stages.discover(memory_lib, settings, run_id)
    assert len(todo) == 1
    staged = todo[0]["path"]
    assert staged.startswith(os.path.abspath(tmp_path / "data" / "library-cache") + os.sep)
    with runs.session(settings) as s:
        asset = get_asset(s, todo[0]["asset_id"])
        assert asset["uri"] == f"{memory_lib}/clip.mp4" and asset["library"] == memory_lib
        assert find_asset_by_uri(s, staged)["id"] == asset["id"]  # later stages find it by the copy
        failures = list_failures(s)
    assert [f["uri"] for f in failures] == [f"{memory_lib}/broken.mkv"]
    assert failures[0]["message"].startswith(f"{memory_lib}/broken.mkv: ")

    # the process-asset flow's first stage gets the staged path and keeps the URI as the record
    ingested = asset_stages.ingest_asset(staged, settings, run_id)
    assert ingested["uri"] == f"{memory_lib}/clip.mp4" and ingested["id"] == asset["id"]
    assert asset_stages.asset_ref(asset["id"], settings)["path"] == staged
    assert asset_stages.discover(memory_lib, settings, run_id) == todo  # rerun: same asset, same copy


def test_sidecar_prompts_follow_the_remote_file(tmp_path: Path, videos: tuple[bytes, bytes],
                                               memory_lib: str) -> None:
    from tasks.shot_prompts import read_sidecar

    good, _ = videos
    _put(memory_lib, "door.mp4", good)
    _put(memory_lib, "door.prompts.txt", b"# stem-named sidecar\na knock at the door\nrain\n")
    cache = tmp_path / "cache"
    (staged,) = list(discover(memory_lib, cache_dir=cache))
    assert [p.prompt for p in read_sidecar(staged.path)] == ["a knock at the door", "rain"]
    _put(memory_lib, "door.prompts.txt", b"footsteps\n")  # edited remotely: re-read, no re-copy
    (again,) = list(discover(memory_lib, cache_dir=cache))
    assert again.path == staged.path and [p.prompt for p in read_sidecar(again.path)] == ["footsteps"]
    _put(memory_lib, "door.prompts.txt", None)  # removed remotely: gone locally too
    (third,) = list(discover(memory_lib, cache_dir=cache))
    assert read_sidecar(third.path) == []
