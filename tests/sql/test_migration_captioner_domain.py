"""Migration 0003 (captioner domain) on a SQLite database that already holds prompt rows; the
note reaches `status` rows per asset."""

from __future__ import annotations

from sqlalchemy import inspect, text

from sql.migrate import current, downgrade, heads, upgrade
from sql.repository import asset_status_rows, upsert_prompt
from sql.session import make_engine, session_scope


def test_upgrade_from_0002_keeps_prompts_and_status_reports_the_note(sqlite_url: str) -> None:
    upgrade(sqlite_url, "0002")
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO asset (id, sha256, uri, status, created_at, updated_at) "
                          "VALUES (1, 'ab', 'file:///a.mp4', 'done', '2026-12-01 00:00:00', '2026-12-01 00:00:00')"))
        conn.execute(text('INSERT INTO scene (id, asset_id, "index", window_index, start_s, end_s, shot_start_s, '
                          'shot_end_s, created_at) VALUES (7, 1, 0, 0, 0, 8, 0, 8, "2026-12-01 00:00:00")'))
        conn.execute(text('INSERT INTO prompt (id, scene_id, "order", text, source, dropped, captioner_id, created_at) '
                          "VALUES (3, 7, 1, 'A clock ticks', 'captioner', 0, 'foleyworld:x', '2026-12-01 00:00:00')"))
    upgrade(sqlite_url)
    assert current(sqlite_url) == heads()[0]
    assert {"captioner_ood_distance", "captioner_note"} <= {c["name"] for c in inspect(engine).get_columns("prompt")}
    with session_scope(engine) as db:
        (row,) = asset_status_rows(db)
        assert row["prompts_note"] is None  # rows written before keep NULL
        upsert_prompt(db, window_id=7, order=1, text="A clock ticks", captioner_id="foleyworld:x",
                      captioner_ood_distance=8.1, captioner_note="not FoleyWorld: bring a VLM")
    with session_scope(engine) as db:
        (row,) = asset_status_rows(db)
        assert row["prompts_note"] == "not FoleyWorld: bring a VLM"
    downgrade(sqlite_url, "0002")
    assert "captioner_note" not in {c["name"] for c in inspect(engine).get_columns("prompt")}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT text FROM prompt")).scalar_one() == "A clock ticks"
