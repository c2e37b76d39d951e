"""The archive-scale read path (issue #18 §5) answers what the counting one did: the views over
the rollups (sql/rollups.py) equal the views as they were before migration 0007 (counts over
windows and tracks), through inserts, supersessions, rewritten takes and status changes; the
rollups equal a full recount; `status` pages and filters."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from flows.cli import main
from sql import repository as r
from sql import rollups
from sql.migrate import upgrade
from sql.session import make_engine, session_scope

DAY1 = datetime(2026, 11, 30, 23, 30, tzinfo=timezone.utc)
DAY2 = DAY1 + timedelta(hours=1)  # the next UTC day

# The views before 0007, the reference answers.
BEFORE = {
    "v_asset_progress": """SELECT a.id AS asset_id, a.status,
       (SELECT COUNT(DISTINCT s.shot_index) FROM scene_window s WHERE s.asset_id = a.id) AS scenes,
       (SELECT COUNT(*) FROM scene_window s WHERE s.asset_id = a.id) AS windows,
       (SELECT COUNT(*) FROM track t JOIN scene_window s ON s.id = t.window_id
         WHERE s.asset_id = a.id AND t.status = 'current') AS tracks,
       (SELECT COALESCE(SUM(t.wall_s), 0) FROM track t JOIN scene_window s ON s.id = t.window_id
         WHERE s.asset_id = a.id) AS model_seconds FROM asset a""",
    "v_throughput_daily": """SELECT date(a.finished_at) AS day, COUNT(*) AS assets,
       COALESCE(SUM(a.duration_s), 0) AS footage_seconds,
       COALESCE(SUM((SELECT COUNT(DISTINCT s.shot_index) FROM scene_window s WHERE s.asset_id = a.id)), 0) AS scenes,
       COALESCE(SUM((SELECT COUNT(*) FROM scene_window s WHERE s.asset_id = a.id)), 0) AS windows,
       COALESCE(SUM((SELECT COUNT(*) FROM track t JOIN scene_window s ON s.id = t.window_id
                      WHERE s.asset_id = a.id)), 0) AS tracks
       FROM asset a WHERE a.status = 'done' AND a.finished_at IS NOT NULL GROUP BY date(a.finished_at)""",
    "v_generation_seconds_daily": """SELECT date(t.finished_at) AS day, t.device, COUNT(*) AS tracks,
       COALESCE(SUM(t.wall_s), 0) AS model_seconds FROM track t WHERE t.finished_at IS NOT NULL
       GROUP BY date(t.finished_at), t.device""",
}
NOW = {
    "v_asset_progress": "SELECT asset_id, status, scenes, windows, tracks, model_seconds FROM v_asset_progress",
    "v_throughput_daily": "SELECT * FROM v_throughput_daily",
    "v_generation_seconds_daily": "SELECT * FROM v_generation_seconds_daily",
}


def _answers(engine: Engine, queries: dict[str, str]) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET TIME ZONE 'UTC'"))  # the old views' date() used the session's
        return {name: sorted((tuple(str(v) if v is not None else "" for v in row)
                              for row in conn.execute(text(sql))), key=str)
                for name, sql in queries.items()}


def _take(window_id: int, order: int, version: int, when: datetime, device: str | None,
          wall: float, status: str = "current") -> dict[str, Any]:
    return dict(window_id=window_id, order=order, version=version, prompt_text="p", seed=1, alpha=4.5,
                beta=1.5, steps=25, mode="nag", bundle_id="b", weights_sha256="w", config_hash="c",
                stem_uri=f"/s/{window_id}_{order}_{version}", stem_sha256="s", finished_at=when,
                device=device, wall_s=wall, status=status)


def _archive(engine: Engine) -> None:
    """Three assets written as the pipeline writes them, then reviewed and re-run."""
    with session_scope(engine) as s:
        ids = [r.upsert_asset(s, sha256=f"{i:064x}", uri=f"/lib/{i}.mp4", duration_s=10.0 * i)["id"]
               for i in (1, 2, 3)]
        w = {}
        for aid in ids[:2]:
            for shot, win in ((0, 0), (0, 1), (1, 0)):
                w[aid, shot, win] = r.upsert_window(s, asset_id=aid, shot_index=shot, window_index=win,
                                                    start_s=shot * 8.0 + win * 6, end_s=shot * 8.0 + win * 6 + 8)["id"]
        a, b = ids[0], ids[1]
        for (aid, shot, win), wid in w.items():
            for order in (1, 2):
                r.upsert_track(s, **_take(wid, order, 1, DAY1 if aid == a else DAY2,
                                          "cpu@h1" if order == 1 else None, 0.5 * order))
        # a review: track 1 of a's first window regenerated (v1 superseded), one take deleted
        r.upsert_track(s, **_take(w[a, 0, 0], 1, 2, DAY2, "cpu@h2", 1.25))
        (v1,) = [t["id"] for t in r.track_history(s, w[a, 0, 0]) if t["order"] == 1 and t["version"] == 1]
        r.set_track_status(s, v1, "superseded")
        (gone,) = [t["id"] for t in r.track_history(s, w[b, 1, 0]) if t["order"] == 2]
        r.set_track_status(s, gone, "deleted")
        # a take rewritten under its key (lost stem regenerated with its seed): moves day and device
        r.upsert_track(s, **_take(w[b, 0, 1], 1, 1, DAY1, "cpu@h3", 2.0))
        r.set_asset_status(s, a, "done")
        r.set_asset_status(s, b, "done")
        r.set_asset_status(s, ids[2], "failed", error="no video stream")


@pytest.fixture
def archive(db_url: str) -> Engine:
    upgrade(db_url)
    engine = make_engine(db_url)
    _archive(engine)
    return engine


def test_views_answer_as_the_counting_views_did(archive: Engine) -> None:
    now, before = _answers(archive, NOW), _answers(archive, BEFORE)
    assert now == before
    assert len(now["v_generation_seconds_daily"]) == 6  # (day, device) cells, the moved take's included
    assert [row[:5] for row in now["v_asset_progress"]] == [("1", "done", "2", "3", "6"), ("2", "done", "2", "3", "5"),
                                                            ("3", "failed", "0", "0", "0")]


def test_rollups_equal_a_full_recount(archive: Engine) -> None:
    kept = _answers(archive, NOW)
    with archive.begin() as conn:
        rollups.rebuild_all(conn)
    assert _answers(archive, NOW) == kept


def test_status_pages_and_filters(archive: Engine, db_url: str, tmp_path: Any,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    with session_scope(archive) as s:
        every = r.asset_status_rows(s)
        pages = [r.asset_status_rows(s, limit=2, offset=o) for o in (0, 2, 4)]
        assert [x["id"] for p in pages for x in p] == [x["id"] for x in every] and len(every) == 3
        assert pages[0] == every[:2] and pages[2] == []
        assert [x["status"] for x in r.asset_status_rows(s, status="failed")] == ["failed"]
        assert r.count_status_rows(s) == 3 and r.count_status_rows(s, status="done") == 2
        assert (every[0]["scenes"], every[0]["windows"], every[0]["tracks"]) == (2, 3, 6)
    assert main(["--data-dir", str(tmp_path), "--db", db_url, "status", "--json", "--limit", "2",
                 "--page", "2"]) == 0
    out = capsys.readouterr()
    assert [x["id"] for x in json.loads(out.out)] == [every[2]["id"]]
    assert "assets 3–3 of 3" in out.err
    assert main(["--data-dir", str(tmp_path), "--db", db_url, "status", "--status", "done"]) == 0
    out = capsys.readouterr().out
    assert "2 assets" in out and "failed" not in out
