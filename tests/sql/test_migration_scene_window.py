"""Migration 0005 (scene → scene_window, index → shot_index, scene_id → window_id) on a
database at 0004 that already holds assets, windows, prompts, tracks and failures: every row
and every reference survives the upgrade and the downgrade, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from sqlalchemy import delete, inspect, select, text
from sqlalchemy.exc import IntegrityError

from sql import repository as r
from sql.migrate import current, downgrade, heads, upgrade
from sql.schema import Asset, Failure, Prompt, SceneWindow, Track
from sql.session import make_engine, session_scope

T0 = datetime(2026, 12, 1, tzinfo=timezone.utc)
OLD = {"table": "scene", "shot": '"index"', "fk": "scene_id"}
NEW = {"table": "scene_window", "shot": "shot_index", "fk": "window_id"}


def _fill_0004(conn: Any) -> None:
    """Two assets; asset 1 has two shots (three windows), asset 2 one window; prompts, tracks
    (one superseded, one pointing at its prompt) and failures naming windows and tracks."""
    for aid in (1, 2):
        conn.execute(text("INSERT INTO asset (id, sha256, uri, status, created_at, updated_at) "
                          "VALUES (:i, :s, :u, 'done', :t, :t)"),
                     {"i": aid, "s": f"{aid:064x}", "u": f"file:///a{aid}.mp4", "t": T0})
    for sid, aid, shot, win, start in ((10, 1, 0, 0, 0.0), (11, 1, 0, 1, 6.0), (12, 1, 1, 0, 9.0),
                                       (20, 2, 0, 0, 0.0)):
        conn.execute(text('INSERT INTO scene (id, asset_id, "index", window_index, start_s, end_s, '
                          'shot_start_s, shot_end_s, start_transition, start_transition_s, created_at) '
                          "VALUES (:i, :a, :x, :w, :s, :e, 0, 12, :tr, :trs, :t)"),
                     {"i": sid, "a": aid, "x": shot, "w": win, "s": start, "e": start + 8,
                      "tr": "fade" if sid == 12 else None, "trs": 0.5 if sid == 12 else None, "t": T0})
    if conn.dialect.name == "postgresql":  # explicit ids do not move the id sequence: move it
        conn.execute(text("SELECT setval('scene_id_seq', 20)"))
    for pid, sid, order, txt in ((100, 10, 1, "rain"), (101, 10, 2, "a door"), (102, 12, 1, "wind"),
                                 (103, 20, 1, "a bell")):
        conn.execute(text('INSERT INTO prompt (id, scene_id, "order", text, source, dropped, created_at) '
                          "VALUES (:i, :s, :o, :x, 'captioner', :d, :t)"),
                     {"i": pid, "s": sid, "o": order, "x": txt, "d": pid == 101, "t": T0})
    tracks = ((200, 10, 1, 1, 100, "superseded"), (201, 10, 1, 2, 100, "current"),
              (202, 11, 1, 1, None, "current"), (203, 12, 1, 1, 102, "current"),
              (204, 20, 1, 1, 103, "current"))
    for tid, sid, order, version, pid, status in tracks:
        conn.execute(text('INSERT INTO track (id, scene_id, "order", version, prompt_id, prompt_text, '
                          "seed, alpha, beta, steps, mode, bundle_id, weights_sha256, config_hash, "
                          "stem_uri, stem_sha256, wall_s, status) VALUES (:i, :s, :o, :v, :p, 'x', :seed, "
                          "4.5, 1.5, 25, 'nag', 'b@1', 'w', 'c', :u, 'h', 1.5, :st)"),
                     {"i": tid, "s": sid, "o": order, "v": version, "p": pid, "seed": 2**59 + tid,
                      "u": f"/stems/{tid}.flac", "st": status})
    conn.execute(text("INSERT INTO run (id, kind, status, started_at) VALUES (1, 'local', 'done', :t)"),
                 {"t": T0})
    for fid, aid, sid, tid in ((300, 1, 12, 203), (301, 2, 20, None), (302, None, None, None)):
        conn.execute(text("INSERT INTO failure (id, run_id, asset_id, scene_id, track_id, uri, stage, "
                          "error_class, message, created_at) VALUES (:i, 1, :a, :s, :tr, 'u', 'generate', "
                          "'E', 'm', :t)"), {"i": fid, "a": aid, "s": sid, "tr": tid, "t": T0})


def _snapshot(conn: Any, n: dict[str, str]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the four tables, in the naming ``n`` (before or after the rename)."""
    q = {
        "windows": f"SELECT id, asset_id, {n['shot']}, window_index, start_s, end_s, start_transition, "
                   f"start_transition_s FROM {n['table']} ORDER BY id",
        "prompts": f'SELECT id, {n["fk"]}, "order", text, dropped FROM prompt ORDER BY id',
        "tracks": f'SELECT id, {n["fk"]}, "order", version, prompt_id, seed, status FROM track ORDER BY id',
        "failures": f"SELECT id, asset_id, {n['fk']}, track_id FROM failure ORDER BY id",
    }
    return {k: [tuple(row) for row in conn.execute(text(sql))] for k, sql in q.items()}


def _references(url: str) -> dict[str, tuple[list[str], str, str | None]]:
    insp = inspect(make_engine(url))
    return {t: next((fk["constrained_columns"], fk["referred_table"], fk.get("name"))
                    for fk in insp.get_foreign_keys(t) if fk["referred_table"] in ("scene", "scene_window"))
            for t in ("prompt", "track", "failure")}


def test_scene_window_rename_keeps_every_row_and_reference(db_url: str) -> None:
    upgrade(db_url, "0004")
    engine = make_engine(db_url)
    with engine.begin() as conn:
        _fill_0004(conn)
        before = _snapshot(conn, OLD)
    assert len(before["tracks"]) == 5 and len(before["failures"]) == 3

    upgrade(db_url)
    assert current(db_url) == heads()[0]
    tables = set(inspect(engine).get_table_names())
    assert "scene_window" in tables and "scene" not in tables
    with engine.connect() as conn:
        assert _snapshot(conn, NEW) == before
    assert _references(db_url) == {
        "prompt": (["window_id"], "scene_window", "fk_prompt_window_id_scene_window"),
        "track": (["window_id"], "scene_window", "fk_track_window_id_scene_window"),
        "failure": (["window_id"], "scene_window", "fk_failure_window_id_scene_window")}

    # the ORM and the repository read the rows; new windows get fresh ids; views query
    with session_scope(engine) as s:
        detail = r.asset_detail(s, 1)
        assert [(w["id"], w["shot_index"], w["window_index"]) for w in detail["windows"]] == \
            [(10, 0, 0), (11, 0, 1), (12, 1, 0)]
        assert [t["id"] for t in detail["windows"][0]["tracks"]] == [200, 201]
        assert [p["text"] for p in detail["windows"][0]["prompts"]] == ["rain", "a door"]
        assert s.get(Track, 203).prompt_id == 102 and s.get(Failure, 300).window_id == 12
        assert [w["id"] for w in r.shot_windows(s, 1, 0)] == [10, 11]
        new = r.upsert_window(s, asset_id=2, shot_index=1, window_index=0, start_s=8.0, end_s=9.0)
        assert new["id"] == 21  # the id sequence (renamed on PostgreSQL) goes on
        (row,) = [x for x in r.asset_status_rows(s) if x["id"] == 1]
        assert (row["scenes"], row["windows"], row["tracks"]) == (2, 3, 3)
    with engine.connect() as conn:
        progress = {m["asset_id"]: m for m in conn.execute(text("SELECT * FROM v_asset_progress")).mappings()}
    assert (progress[1]["scenes"], progress[1]["windows"], progress[1]["tracks"]) == (2, 3, 3)

    # the references are enforced and their ON DELETE actions still act
    with pytest.raises(IntegrityError):
        with session_scope(engine) as s:
            r.upsert_prompt(s, window_id=999, order=1, text="orphan")
    with session_scope(engine) as s:
        s.execute(delete(SceneWindow).where(SceneWindow.id == new["id"]))
        s.execute(delete(Asset).where(Asset.id == 2))
    with session_scope(engine) as s:
        assert s.execute(select(SceneWindow.id).where(SceneWindow.asset_id == 2)).all() == []
        assert s.get(Prompt, 103) is None and s.get(Track, 204) is None and s.get(Failure, 301) is None

    downgrade(db_url, "0004")
    assert current(db_url) == "0004"
    tables = set(inspect(engine).get_table_names())
    assert "scene" in tables and "scene_window" not in tables
    with engine.connect() as conn:
        after = _snapshot(conn, OLD)
    kept = {k: [row for row in rows if not (k == "windows" and row[1] == 2) and row[0] not in (103, 204, 301)]
            for k, rows in before.items()}
    assert after == kept
    assert _references(db_url) == {
        "prompt": (["scene_id"], "scene", "fk_prompt_scene_id_scene"),
        "track": (["scene_id"], "scene", "fk_track_scene_id_scene"),
        "failure": (["scene_id"], "scene", "fk_failure_scene_id_scene")}
    upgrade(db_url)
    assert current(db_url) == heads()[0]
