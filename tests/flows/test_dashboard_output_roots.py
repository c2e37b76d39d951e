"""Outputs written outside the data dir (`stepfoley run/demo --out DIR`) play in the dashboard;
everything not recorded under a declared root is still refused (issue #23)."""
from __future__ import annotations

import os
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from flows.dashboard.app import create_app
from sql import migrate
from sql import repository as repo
from tasks.config import load_settings
from tasks.database import engine_for_url

VIDEO = b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 8  # served as bytes; never decoded


def _output(s: Session, asset_id: int, path: Path) -> int:
    row = repo.upsert_output(s, asset_id=asset_id, uri=str(path), sha256="2" * 64)
    return row["id"] if isinstance(row, dict) else row


def test_output_under_a_declared_out_dir_is_served(tmp_path: Path) -> None:
    data, out, elsewhere = tmp_path / "data", tmp_path / "exports", tmp_path / "elsewhere"
    for d in (data, out, elsewhere):
        d.mkdir()
    (out / "clip.mkv").write_bytes(VIDEO)
    (elsewhere / "secret.mkv").write_bytes(VIDEO)
    os.symlink(elsewhere / "secret.mkv", out / "link.mkv")
    url = f"sqlite:///{data / 'stepfoley.db'}"
    migrate.upgrade(url)
    app = create_app(url, data, token=None)
    client = TestClient(app)
    with Session(engine_for_url(url)) as s, s.begin():
        a = repo.upsert_asset(s, sha256="a" * 64, uri="file:///x.mp4", library="lib")["id"]
        good = _output(s, a, out / "clip.mkv")
        undeclared = _output(s, a, elsewhere / "secret.mkv")
        link = _output(s, a, out / "link.mkv")
        dotdot = _output(s, a, out / ".." / "elsewhere" / "secret.mkv")
        missing = _output(s, a, out / "gone.mkv")
    # Before any run declared the directory, nothing there is served.
    assert client.get(f"/media/output/{good}").status_code == 404
    with Session(engine_for_url(url)) as s, s.begin():  # the run, as `stepfoley run --out` records it
        settings = load_settings({"data_dir": data, "out_dir": out}).to_json()
        repo.start_run(s, kind="demo", parameters={"library": "lib", "settings": settings})
    r = client.get(f"/media/output/{good}", headers={"Range": "bytes=4-11"})
    assert r.status_code == 206 and r.content == b"ftypisom"
    for refused in (undeclared, link, dotdot, missing, 424242):
        assert client.get(f"/media/output/{refused}").status_code == 404, refused
    # The data dir's own outputs still play, and stems stay confined to the data dir.
    (data / "outputs").mkdir()
    (data / "outputs" / "own.mkv").write_bytes(VIDEO)
    with Session(engine_for_url(url)) as s, s.begin():
        own = _output(s, a, data / "outputs" / "own.mkv")
    assert client.get(f"/media/output/{own}").status_code == 200
