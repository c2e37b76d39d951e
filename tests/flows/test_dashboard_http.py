"""HTTP tests of the dashboard over a real SQLite DB and real audio files in a tmp data dir."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from flows.dashboard.app import create_app
from sql import migrate
from sql import repository as repo
from sql.session import make_engine


@pytest.fixture()
def world(tmp_path: Path) -> dict:
    data = tmp_path / "data"
    (data / "stems").mkdir(parents=True)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate.upgrade(url)
    stem = data / "stems" / "t1.wav"
    sf.write(stem, (0.1 * np.sin(np.arange(16000) * 0.1)).astype("float32"), 16000)
    outside = tmp_path / "secret.wav"
    outside.write_bytes(stem.read_bytes())
    os.symlink(outside, data / "stems" / "link.wav")
    engine = make_engine(url)
    with Session(engine) as s, s.begin():
        a = repo.upsert_asset(s, sha256="a" * 64, uri="file:///x.mp4")
        sc = repo.upsert_scene(s, asset_id=a["id"], index=0, window_index=0, start_s=0.0, end_s=1.0)
        sid = sc["id"] if isinstance(sc, dict) else sc
        common = dict(scene_id=sid, prompt_text="rain", seed=1, alpha=4.5, beta=0.0, steps=25,
                      mode="nag", bundle_id="b", weights_sha256="0" * 64, config_hash="c",
                      stem_sha256="0" * 64)
        good = repo.upsert_track(s, order=1, version=1, stem_uri="stems/t1.wav", **common)
        evil = repo.upsert_track(s, order=2, version=1, stem_uri="stems/link.wav", **common)
        up = repo.upsert_track(s, order=3, version=1, stem_uri="../secret.wav", **common)
    engine.dispose()
    app = create_app(url, data, token="s3cret")
    return {"client": TestClient(app), "asset": a["id"], "good": good, "evil": [evil, up]}


def test_api_and_pages(world: dict) -> None:
    c = world["client"]
    assert c.get("/api/overview").status_code == 200
    assert c.get("/").status_code == 200
    r = c.get("/api/assets").json()
    assert r["total"] == 1
    assert c.get(f"/api/assets/{world['asset']}").status_code == 200
    assert c.get("/api/assets/999999").status_code == 404
    assert c.get("/api/failures").status_code == 200


def test_pagination_bounds(world: dict) -> None:
    c = world["client"]
    for q in ("page=0", "page=-1", "per_page=0", "per_page=100000"):
        assert c.get(f"/api/assets?{q}").status_code == 422


def test_media_range_and_containment(world: dict) -> None:
    c = world["client"]
    r = c.get(f"/media/track/{world['good']}", headers={"Range": "bytes=0-99"})
    assert r.status_code == 206 and len(r.content) == 100
    for tid in world["evil"]:
        assert c.get(f"/media/track/{tid}").status_code == 404
    assert c.get("/media/track/424242").status_code == 404
    for p in ("/media/track/..%2F..%2Fetc%2Fpasswd", "/media/track/%2Fetc%2Fpasswd"):
        assert c.get(p).status_code in (404, 422)


def test_spectrogram_cached(world: dict) -> None:
    c = world["client"]
    r = c.get(f"/media/track/{world['good']}/spectrogram.png")
    assert r.status_code == 200 and r.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert c.get(f"/media/track/{world['evil'][0]}/spectrogram.png").status_code == 404


def test_write_action_auth(world: dict) -> None:
    c = world["client"]
    url = f"/api/tracks/{world['good']}/regenerate"
    assert c.post(url).status_code == 401
    assert c.post(url, headers={"X-Stepfoley-Token": "wrong"}).status_code == 403
    assert c.post("/api/tracks/999999/regenerate",
                  headers={"X-Stepfoley-Token": "s3cret"}).status_code == 404
    assert c.get("/api/jobs/999999").status_code == 404
