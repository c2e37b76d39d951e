"""HTTP tests of the dashboard over a real SQLite DB (migrated) and real media files."""
from __future__ import annotations

import os
import re
import subprocess
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
from tasks.ffmpeg_bin import ffmpeg_path

TOKEN = "s3cret"


@pytest.fixture()
def world(tmp_path: Path) -> dict:
    data = tmp_path / "data"
    (data / "stems").mkdir(parents=True)
    (data / "outputs").mkdir()
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate.upgrade(url)
    stem = data / "stems" / "t1.wav"
    sf.write(stem, (0.1 * np.sin(np.arange(16000) * 0.1)).astype("float32"), 16000)
    sf.write(data / "mix.wav", (0.1 * np.sin(np.arange(16000) * 0.05)).astype("float32"), 16000)
    video = data / "outputs" / "out.mp4"
    subprocess.run([ffmpeg_path(), "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc=size=64x48:rate=10:duration=1", "-pix_fmt", "yuv420p", str(video)],
                   check=True)
    outside = tmp_path / "secret.wav"
    outside.write_bytes(stem.read_bytes())
    os.symlink(outside, data / "stems" / "link.wav")
    engine = make_engine(url)
    with Session(engine) as s, s.begin():
        a = repo.upsert_asset(s, sha256="a" * 64, uri="file:///x.mp4", library="lib1")
        repo.upsert_asset(s, sha256="b" * 64, uri="file:///y.mp4", library="lib2")
        sc = repo.upsert_window(s, asset_id=a["id"], shot_index=0, window_index=0, start_s=0.0, end_s=1.0)
        sid = sc["id"] if isinstance(sc, dict) else sc
        repo.upsert_prompt(s, window_id=sid, order=1, text="rain", score=0.91, source="captioner")
        repo.upsert_prompt(s, window_id=sid, order=2, text="<a door slams>", source="user")
        common = dict(window_id=sid, prompt_text="rain", seed=1, alpha=4.5, beta=0.0, steps=25,
                      mode="nag", bundle_id="b", weights_sha256="0" * 64, config_hash="c",
                      stem_sha256="0" * 64, device="cpu", wall_s=1.5)
        good = repo.upsert_track(s, order=1, version=1, stem_uri="stems/t1.wav", **common)
        evil = repo.upsert_track(s, order=2, version=1, stem_uri="stems/link.wav", **common)
        up = repo.upsert_track(s, order=3, version=1, stem_uri="../secret.wav", **common)
        absolute = repo.upsert_track(s, order=4, version=1, stem_uri=f"file://{outside}", **common)
        mix = repo.upsert_mix(s, asset_id=a["id"], config_hash="c", uri="mix.wav", sha256="1" * 64,
                              loudness_lufs=-23.0, true_peak_dbtp=-1.5)
        mix_id = mix["id"] if isinstance(mix, dict) else mix
        out = repo.upsert_output(s, asset_id=a["id"], uri=str(video), sha256="2" * 64, mix_id=mix_id)
        out_id = out["id"] if isinstance(out, dict) else out
        run = repo.start_run(s, kind="backfill")
        run_id = run["id"] if isinstance(run, dict) else run
        repo.set_run_flow_run_id(s, run_id, "0123456789abcdef")
        repo.record_failure(s, stage="generate", error_class="RuntimeError", message="boom <b>",
                            run_id=run_id, asset_id=a["id"], uri="file:///x.mp4")
    engine.dispose()
    app = create_app(url, data, token=TOKEN)
    ro = create_app(url, data, token=None)
    return {"client": TestClient(app), "ro": TestClient(ro), "asset": a["id"], "good": good,
            "evil": [evil, up, absolute], "mix": mix_id, "output": out_id, "data": data}


def test_api_and_pages(world: dict) -> None:
    c = world["client"]
    o = c.get("/api/overview").json()
    assert o["counts"]["pending"] == 2 and o["failures"][0]["prefect_flow_run_id"] == "0123456789abcdef"
    r = c.get("/api/assets").json()
    assert r["total"] == 2 and r["pages"] == 1
    assert c.get("/api/assets?library=lib2").json()["total"] == 1
    assert c.get("/api/assets?since=2000-01-01").json()["total"] == 2
    assert c.get("/api/assets?since=2999-01-01").json()["total"] == 0
    assert c.get("/api/assets?since=yesterday").status_code == 422
    assert c.get("/api/assets?status=bogus").status_code == 422
    d = c.get(f"/api/assets/{world['asset']}").json()
    assert [p["text"] for p in d["windows"][0]["prompts"]] == ["rain", "<a door slams>"]
    assert c.get("/api/assets/999999").status_code == 404
    assert c.get("/api/assets/abc").status_code == 422
    assert c.get("/api/failures").json()["failures"][0]["error_class"] == "RuntimeError"
    assert "boom &lt;b&gt;" in c.get("/failures").text
    for page in ("/", "/assets", "/assets?status=pending&library=lib1", "/failures",
                 f"/assets/{world['asset']}"):
        resp = c.get(page)
        assert resp.status_code == 200, page
        assert "boom <b>" not in resp.text  # DB text is escaped, never markup
    html = c.get(f"/assets/{world['asset']}").text
    assert f'src="/media/output/{world["output"]}"' in html and "-23.0 LUFS" in html
    assert "score 0.910" in html and "&lt;a door slams&gt;" in html and "user" in html
    assert c.get("/assets/999999").status_code == 404
    assert c.get("/static/style.css").status_code == 200
    assert "<svg" in c.get("/").text


def test_pagination_bounds(world: dict) -> None:
    c = world["client"]
    for q in ("page=0", "page=-1", "per_page=0", "per_page=100000", "page=1000001", "page=x"):
        assert c.get(f"/api/assets?{q}").status_code == 422, q
        assert c.get(f"/assets?{q}").status_code == 422, q
        assert c.get(f"/api/failures?{q}").status_code == 422, q
    r = c.get("/api/assets?per_page=1&page=2").json()
    assert len(r["assets"]) == 1 and r["pages"] == 2
    assert c.get("/api/assets?per_page=1&page=3").json()["assets"] == []


def test_media_range_and_containment(world: dict) -> None:
    c = world["client"]
    r = c.get(f"/media/track/{world['good']}", headers={"Range": "bytes=0-99"})
    assert r.status_code == 206 and len(r.content) == 100
    assert c.get(f"/media/mix/{world['mix']}").status_code == 200
    v = c.get(f"/media/output/{world['output']}", headers={"Range": "bytes=0-9"})
    assert v.status_code == 206 and v.content[4:8] == b"ftyp"
    for tid in world["evil"]:  # symlink out, ../, absolute file:// outside the data dir
        assert c.get(f"/media/track/{tid}").status_code == 404
    for p in ("/media/track/424242", "/media/mix/424242", "/media/output/424242",
              "/media/track/..%2F..%2Fetc%2Fpasswd", "/media/track/%2Fetc%2Fpasswd",
              "/media/../../etc/passwd", "/static/..%2F..%2Fapp.py", "/static/../app.py"):
        assert c.get(p).status_code == 404, p


def test_spectrogram_cached(world: dict) -> None:
    c = world["client"]
    r = c.get(f"/media/track/{world['good']}/spectrogram.png")
    assert r.status_code == 200 and r.content[:8] == b"\x89PNG\r\n\x1a\n"
    cached = world["data"] / "spectrograms" / ("0" * 64 + ".png")
    mtime = cached.stat().st_mtime_ns
    assert c.get(f"/media/track/{world['good']}/spectrogram.png").content == r.content
    assert cached.stat().st_mtime_ns == mtime  # rendered once
    assert c.get(f"/media/track/{world['evil'][0]}/spectrogram.png").status_code == 404
    assert c.get("/media/track/424242/spectrogram.png").status_code == 404


def test_write_action_auth(world: dict) -> None:
    c = world["client"]
    for url in (f"/api/tracks/{world['good']}/regenerate", f"/api/tracks/{world['good']}/delete"):
        assert c.post(url).status_code == 401
        assert c.post(url, headers={"X-Stepfoley-Token": "wrong"}).status_code == 403
        assert world["ro"].post(url, headers={"X-Stepfoley-Token": TOKEN}).status_code == 403
        assert c.post(url, headers={"X-Stepfoley-Token": TOKEN,
                                    "Origin": "http://evil.example"}).status_code == 403
    assert c.post("/api/tracks/999999/regenerate",
                  headers={"X-Stepfoley-Token": TOKEN}).status_code == 404
    assert c.get("/api/jobs/999999").status_code == 404
    assert c.get("/api/jobs").json() == []


def test_form_csrf(world: dict) -> None:
    c = world["client"]
    html = c.get(f"/assets/{world['asset']}").text  # sets the session cookie
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', html).group(1)  # type: ignore[union-attr]
    url = f"/tracks/{world['good']}/regenerate"
    assert c.post(url, data={"token": TOKEN}).status_code == 403  # no CSRF token
    assert c.post(url, data={"token": TOKEN, "csrf": "0" * 64}).status_code == 403
    assert c.post(url, data={"token": TOKEN, "csrf": csrf},
                  headers={"Origin": "http://evil.example"}).status_code == 403
    other = TestClient(c.app)  # another session: this CSRF token is not valid there
    other.get("/")
    assert other.post(url, data={"token": TOKEN, "csrf": csrf}).status_code == 403
    assert c.post(url, data={"csrf": csrf}).status_code == 401
    assert c.post(url, data={"csrf": csrf, "token": "nope"}).status_code == 403
    assert c.post("/tracks/999999/regenerate", data={"csrf": csrf, "token": TOKEN}).status_code == 404
    assert c.post(f"/tracks/{world['good']}/chmod", data={"csrf": csrf, "token": TOKEN}).status_code == 404
    ro_html = world["ro"].get(f"/assets/{world['asset']}").text
    assert "regenerate</button>" not in ro_html and "read-only" in ro_html
