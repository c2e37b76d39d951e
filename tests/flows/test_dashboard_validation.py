"""The dashboard's write API checks every value up front (issue #23): a bad body answers 422
naming the field (400 when it is not JSON) and starts no job."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from flows.dashboard.app import create_app
from sql import migrate
from sql import repository as repo
from tasks.database import engine_for_url

TOKEN = "s3cret"
HEADERS = {"X-Stepfoley-Token": TOKEN}


@pytest.fixture()
def app(tmp_path: Path) -> dict:
    tmp = tmp_path
    url = f"sqlite:///{tmp / 'db.sqlite'}"
    migrate.upgrade(url)
    with Session(engine_for_url(url)) as s, s.begin():
        a = repo.upsert_asset(s, sha256="a" * 64, uri="file:///x.mp4", library="lib")
        sc = repo.upsert_window(s, asset_id=a["id"], shot_index=0, window_index=0, start_s=0.0, end_s=1.0)
        track = repo.upsert_track(s, window_id=sc["id"] if isinstance(sc, dict) else sc, order=1,
                                  version=1, prompt_text="rain", seed=1, alpha=4.5, beta=0.0,
                                  steps=25, mode="nag", bundle_id="b", weights_sha256="0" * 64,
                                  config_hash="c", stem_uri="stems/t1.wav", stem_sha256="0" * 64)
    return {"client": TestClient(create_app(url, tmp / "data", token=TOKEN)), "track": track,
            "asset": a["id"]}


@pytest.mark.parametrize("body, field", [
    ({"beta": "NaN"}, "beta"), ({"beta": 1e308}, "beta"), ({"beta": -5}, "beta"),
    ({"beta": True}, "beta"), ({"seed": 2**70}, "seed"), ({"seed": 1.5}, "seed"),
    ({"seed": "x"}, "seed"), ({"prompt": ["x"]}, "prompt"), ({"prompt": "x" * 5000}, "prompt"),
    ({"delete": "false"}, "delete"), ({"betta": 1.0}, "betta"),
])
def test_bad_json_values_answer_422_naming_the_field(app: dict, body: dict, field: str) -> None:
    c = app["client"]
    r = c.post(f"/api/tracks/{app['track']}/regenerate", json=body, headers=HEADERS)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and detail.startswith(field) and "\n" not in detail
    assert c.get("/api/jobs").json() == []  # nothing started


@pytest.mark.parametrize("raw, status", [(b"{not json", 400), (b"\xff\xfe", 400), (b"[1, 2]", 422),
                                         (b'"beta"', 422)])
def test_body_that_is_not_a_json_object(app: dict, raw: bytes, status: int) -> None:
    c = app["client"]
    r = c.post(f"/api/tracks/{app['track']}/regenerate", content=raw,
               headers={**HEADERS, "Content-Type": "application/json"})
    assert r.status_code == status, r.text
    assert c.get("/api/jobs").json() == []


def test_auth_is_checked_before_the_body(app: dict) -> None:
    c = app["client"]
    url = f"/api/tracks/{app['track']}/regenerate"
    assert c.post(url, content=b"{not json", headers={"Content-Type": "application/json"}).status_code == 401
    assert c.post(url, json={"beta": "NaN"}, headers={"X-Stepfoley-Token": "no"}).status_code == 403


def test_form_values_are_checked_too(app: dict) -> None:
    c = app["client"]
    html = c.get(f"/assets/{app['asset']}").text
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', html).group(1)  # type: ignore[union-attr]
    url = f"/tracks/{app['track']}/regenerate"
    for field, value in (("beta", "nan"), ("beta", "1e308"), ("seed", str(2**70)), ("seed", "2**70")):
        r = c.post(url, data={"csrf": csrf, "token": TOKEN, field: value})
        assert r.status_code == 422 and r.json()["detail"].startswith(field), r.text
    assert c.get("/api/jobs").json() == []
