"""The embedded path end to end, through the real CLI: idempotent reruns, crash resume,
concurrent backfills, bad input recorded while the batch goes on (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from sql.schema import Asset, Failure, Track
from sql.session import make_engine, session_scope
from tests.flows.conftest import make_library, stepfoley

NAMES = ["three-shots.mp4", "with-original.mp4"]
PROMPTS = {"three-shots.mp4": ["a dog barks", "rain falls"], "with-original.mp4": ["footsteps", "wind"]}


def _args(data: Path, bundle: Path, db: str | None) -> list[str]:
    base = ["--data-dir", str(data)] + (["--db", db] if db else [])
    return base


def _run(data: Path, bundle: Path, lib: Path, db: str | None = None, extra: list[str] | None = None,
         **kw) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return stepfoley([*_args(data, bundle, db), "run", str(lib), "--bundle", str(bundle),
                      "--steps", "3", "--tracks", "2", *(extra or [])], **kw)


def _status(data: Path, db: str | None) -> list[dict]:
    proc = stepfoley([*_args(data, Path("."), db), "status", "--json"])
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _tracks(db_url: str) -> list[tuple]:
    with session_scope(make_engine(db_url)) as s:
        return sorted(s.execute(select(Track.scene_id, Track.order, Track.version, Track.seed,
                                       Track.stem_sha256, Track.status)).all())


def _hash(p: str) -> str:
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


@pytest.fixture
def db_choice(request, tmp_path: Path):  # type: ignore[no-untyped-def]
    return None


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_run_is_idempotent_and_records_provenance(backend: str, request, tmp_path: Path,
                                                   tiny_bundle: Path, demo_footage: Path) -> None:
    db = request.getfixturevalue("postgres_url") if backend == "postgres" else None
    lib = make_library(demo_footage, tmp_path / "lib", NAMES, PROMPTS)
    data = tmp_path / "data"
    first = _run(data, tiny_bundle, lib, db)
    assert first.returncode == 0, first.stdout + first.stderr
    url = db or f"sqlite:///{data / 'stepfoley.db'}"
    rows = _status(data, db)
    assert {r["status"] for r in rows} == {"done"} and len(rows) == 2
    tracks_before = _tracks(url)
    assert len(tracks_before) == sum(r["tracks"] for r in rows) > 0
    outputs = {r["path"]: _hash(r["output"]) for r in rows}
    t0 = time.monotonic()
    second = _run(data, tiny_bundle, lib, db)
    assert second.returncode == 0, second.stderr
    assert _tracks(url) == tracks_before  # no model work, same stems, same seeds
    assert {r["path"]: _hash(r["output"]) for r in _status(data, db)} == outputs
    with session_scope(make_engine(url)) as s:
        t = s.execute(select(Track).limit(1)).scalar_one()
        assert t.bundle_id.startswith("tiny-random@") and len(t.weights_sha256) == 64
        assert t.steps == 3 and t.alpha == 4.5 and t.mode == "nag" and t.wall_s > 0
        assert Path(t.stem_uri).is_file()
    print(f"rerun took {time.monotonic() - t0:.1f} s")


def test_bad_input_is_recorded_and_batch_continues(tmp_path: Path, tiny_bundle: Path,
                                                   demo_footage: Path) -> None:
    lib = make_library(demo_footage, tmp_path / "lib", ["three-shots.mp4"], PROMPTS)
    (lib / "empty.mp4").write_bytes(b"")
    (lib / "noise.mp4").write_bytes(os.urandom(4096))
    (lib / "cut; $(touch pwned) 'q'.mp4").write_bytes((demo_footage / "three-shots.mp4").read_bytes()[:3000])
    data = tmp_path / "data"
    proc = _run(data, tiny_bundle, lib)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # finished, with failures recorded
    rows = {Path(r["path"]).name: r for r in _status(data, None)}
    assert rows["three-shots.mp4"]["status"] == "done"
    for bad in ("empty.mp4", "noise.mp4", "cut; $(touch pwned) 'q'.mp4"):
        assert rows[bad]["status"] == "failed" and bad in rows[bad]["error"]
        assert "\n" not in rows[bad]["error"]
    assert not (lib / "pwned").exists() and not Path("pwned").exists()
    with session_scope(make_engine(f"sqlite:///{data / 'stepfoley.db'}")) as s:
        assert s.execute(select(func.count(Failure.id))).scalar_one() >= 3


def test_crash_resume_matches_uninterrupted_run(tmp_path: Path, tiny_bundle: Path,
                                                demo_footage: Path) -> None:
    lib = make_library(demo_footage, tmp_path / "lib", NAMES, PROMPTS)
    clean, crashed = tmp_path / "clean", tmp_path / "crashed"
    assert _run(clean, tiny_bundle, lib).returncode == 0
    url = f"sqlite:///{crashed / 'stepfoley.db'}"
    proc = subprocess.Popen([sys.executable, "-m", "flows", "--data-dir", str(crashed), "run",
                             str(lib), "--bundle", str(tiny_bundle), "--steps", "3", "--tracks", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # kill -9 as soon as the first track exists
        if (crashed / "stepfoley.db").exists():
            try:
                if _tracks(url):
                    break
            except Exception:
                pass
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = _tracks(url)
    assert 0 < len(partial) < len(_tracks(f"sqlite:///{clean / 'stepfoley.db'}"))
    assert _run(crashed, tiny_bundle, lib).returncode == 0
    strip = lambda rows: [(o, v, seed, sha, st) for _, o, v, seed, sha, st in rows]  # noqa: E731
    assert strip(_tracks(url)) == strip(_tracks(f"sqlite:///{clean / 'stepfoley.db'}"))
    leftovers = [p for p in crashed.rglob(".*.tmp*")]
    assert leftovers == []
    a = {Path(r["path"]).name: _hash(r["output"]) for r in _status(clean, None)}
    b = {Path(r["path"]).name: _hash(r["output"]) for r in _status(crashed, None)}
    assert a == b


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_two_concurrent_backfills_process_each_asset_once(backend: str, request, tmp_path: Path,
                                                          tiny_bundle: Path, demo_footage: Path) -> None:
    db = request.getfixturevalue("postgres_url") if backend == "postgres" else None
    lib = make_library(demo_footage, tmp_path / "lib", NAMES + ["night-rain.mp4"], PROMPTS)
    data = tmp_path / "data"
    assert stepfoley([*_args(data, tiny_bundle, db), "db", "upgrade"]).returncode == 0
    cmd = [sys.executable, "-m", "flows", *_args(data, tiny_bundle, db), "run", str(lib),
           "--bundle", str(tiny_bundle), "--steps", "3", "--tracks", "2"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, out + err
    url = db or f"sqlite:///{data / 'stepfoley.db'}"
    tracks = _tracks(url)
    keys = [(sc, o, v) for sc, o, v, *_ in tracks]
    assert len(keys) == len(set(keys))
    assert all(v == 1 for _, _, v, *_ in tracks)  # nobody regenerated anybody's work
    with session_scope(make_engine(url)) as s:
        assert set(s.execute(select(Asset.status)).scalars()) == {"done"}
        assert s.execute(select(func.count(Asset.id))).scalar_one() == 3
