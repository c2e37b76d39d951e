"""The review loop (regenerate / delete one track, remix, remux) and the upload scanner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from sql.schema import Asset, Mix, Track
from sql.session import make_engine, session_scope
from tasks.uploads import stable_files
from tests.flows.conftest import make_library, stepfoley

PROMPTS = {"three-shots.mp4": ["a dog barks", "rain falls"]}


def _py(code: str, data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "STEPFOLEY_DATA_DIR": str(data)})


def test_regenerate_then_delete_one_track(tmp_path: Path, tiny_bundle: Path, demo_footage: Path) -> None:
    lib = make_library(demo_footage, tmp_path / "lib", ["three-shots.mp4"], PROMPTS)
    data = tmp_path / "data"
    common = ["--bundle", str(tiny_bundle), "--steps", "3", "--tracks", "2"]
    assert stepfoley(["--data-dir", str(data), "run", str(lib), *common]).returncode == 0
    url = f"sqlite:///{data / 'stepfoley.db'}"
    with session_scope(make_engine(url)) as s:
        sha = s.execute(select(Asset.sha256)).scalar_one()
        before = {(t.window_id, t.order): (t.version, t.stem_sha256) for t in s.execute(select(Track)).scalars()}
        mixes_before = s.execute(select(Mix.sha256)).scalars().all()
    settings = {"bundle": str(tiny_bundle), "steps": 3, "tracks": 2}
    code = ("from flows.regenerate import regenerate_track; import json;"
            f"r = regenerate_track('{sha[:12]}', 1, 1, prompt='a bell rings', seed=7, settings={settings!r});"
            "print('RESULT', json.dumps([t['version'] for t in r['tracks']]))")
    proc = _py(code, data)
    assert proc.returncode == 0 and "RESULT [2]" in proc.stdout, proc.stdout + proc.stderr
    with session_scope(make_engine(url)) as s:
        rows = s.execute(select(Track).order_by(Track.window_id, Track.order, Track.version)).scalars().all()
        changed = [(t.window_id, t.order, t.version, t.status, t.prompt_text, t.seed) for t in rows
                   if t.version > 1 or t.status != "current"]
        scene_of_shot1 = {t.window_id for t in rows if t.version == 2}
        assert len(scene_of_shot1) == 1
        sid = scene_of_shot1.pop()
        assert (sid, 1, 1, "superseded") in [(a, b, c, d) for a, b, c, d, *_ in changed]
        assert (sid, 1, 2, "current", "a bell rings", 7) in changed
        # every other track untouched
        for t in rows:
            if (t.window_id, t.order) != (sid, 1):
                assert before[(t.window_id, t.order)] == (t.version, t.stem_sha256)
        assert s.execute(select(Mix.sha256)).scalars().all() != mixes_before  # re-mixed
    # delete track 2 of the same shot: kept in history, gone from the mix, and a rerun keeps it out
    proc = _py(code.replace("prompt='a bell rings', seed=7", "delete=True").replace("1, 1,", "1, 2,"), data)
    assert proc.returncode == 0, proc.stderr
    assert stepfoley(["--data-dir", str(data), "run", str(lib), *common]).returncode == 0
    with session_scope(make_engine(url)) as s:
        t2 = s.execute(select(Track).where(Track.window_id == sid, Track.order == 2)).scalars().all()
        assert [t.status for t in t2] == ["deleted"]
        t1 = s.execute(select(Track).where(Track.window_id == sid, Track.order == 1, Track.status == "current")).scalar_one()
        assert t1.version == 2  # the operator's take survives a rerun


def test_stable_files_waits_for_a_growing_upload(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    state = tmp_path / "state.json"
    f = inbox / "clip.mp4"
    f.write_bytes(b"x" * 100)
    assert stable_files(inbox, state) == []
    f.write_bytes(b"x" * 200)  # still growing
    assert stable_files(inbox, state) == []
    assert stable_files(inbox, state) == [str(f)]
    assert stable_files(inbox, state, already_known=[str(f)]) == []


def test_upload_flow_processes_complete_files_once(tmp_path: Path, tiny_bundle: Path,
                                                   demo_footage: Path) -> None:
    inbox = make_library(demo_footage, tmp_path / "inbox", ["night-rain.mp4"], {"night-rain.mp4": ["rain falls"]})
    data = tmp_path / "data"
    settings = {"bundle": str(tiny_bundle), "steps": 3, "tracks": 1}
    code = ("from flows.uploads import process_new_uploads; import json;"
            f"print('A', json.dumps(process_new_uploads('{inbox}', {settings!r}), default=str));"
            f"print('B', json.dumps(process_new_uploads('{inbox}', {settings!r}), default=str));"
            f"print('C', json.dumps(process_new_uploads('{inbox}', {settings!r}), default=str))")
    proc = _py(code, data)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = {ln[0]: json.loads(ln[2:]) for ln in proc.stdout.splitlines() if ln[:2] in ("A ", "B ", "C ")}
    assert out["A"]["ready"] == 0  # first sighting: not yet known to be complete
    assert out["B"]["counts"] == {"done": 1}
    assert out["C"]["ready"] == 0  # processed files are not picked up again
    assert sorted(p.name for p in inbox.iterdir()) == ["night-rain.mp4", "night-rain.mp4.prompts.txt"]
