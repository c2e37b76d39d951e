"""Migration 0002 (scene transitions) on a SQLite database that already holds rows."""

from __future__ import annotations

from sqlalchemy import inspect, text

from sql.migrate import current, downgrade, upgrade
from sql.session import make_engine


def test_upgrade_from_0001_keeps_rows_and_adds_nullable_columns(sqlite_url: str) -> None:
    upgrade(sqlite_url, "0001")
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO asset (id, sha256, uri, status, created_at, updated_at) "
                          "VALUES (1, 'ab', 'file:///a.mp4', 'done', '2026-12-01 00:00:00', '2026-12-01 00:00:00')"))
        conn.execute(text('INSERT INTO scene (id, asset_id, "index", window_index, start_s, end_s, shot_start_s, '
                          'shot_end_s, created_at) VALUES (7, 1, 2, 0, 3.5, 9.0, 3.5, 9.0, "2026-12-01 00:00:00")'))
    upgrade(sqlite_url, "0002")
    assert current(sqlite_url) == "0002"
    cols = {c["name"] for c in inspect(engine).get_columns("scene")}
    assert {"start_transition", "end_transition", "start_transition_s", "end_transition_s"} <= cols
    with engine.connect() as conn:
        row = conn.execute(text('SELECT id, asset_id, "index", start_s, end_s, start_transition, '
                                'end_transition_s FROM scene')).one()
    assert tuple(row) == (7, 1, 2, 3.5, 9.0, None, None)
    with engine.begin() as conn:
        conn.execute(text("UPDATE scene SET start_transition = 'fade', start_transition_s = 0.8"))
    downgrade(sqlite_url, "0001")
    assert "start_transition" not in {c["name"] for c in inspect(engine).get_columns("scene")}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM scene")).scalar_one() == 1
