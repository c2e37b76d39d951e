"""Migration 0006 (the stat index on ``asset_path``; it follows 0007) on a database that already
holds paths: the rows are kept, their stat is NULL (never trusted: the first walk after it
hashes each file once), and the downgrade drops the columns and keeps the rows."""

from __future__ import annotations

from sqlalchemy import inspect, text

from sql.migrate import current, downgrade, heads, upgrade
from sql.path_index import path_index, set_path_stat
from sql.session import make_engine, session_scope

STAT = {"size_bytes", "mtime_ns", "inode", "device"}


def test_upgrade_from_0007_keeps_paths_with_no_stat_and_downgrade_drops_it(db_url: str) -> None:
    upgrade(db_url, "0007")
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO asset (id, sha256, uri, status, created_at, updated_at) "
                          "VALUES (1, 'ab', '/lib/a.mp4', 'done', '2026-12-01 00:00:00', "
                          "'2026-12-01 00:00:00')"))
        conn.execute(text("INSERT INTO asset_path (id, asset_id, uri, last_seen_at) "
                          "VALUES (5, 1, '/lib/a.mp4', '2026-12-01 00:00:00')"))
    upgrade(db_url)
    assert current(db_url) == heads()[0]
    assert STAT <= {c["name"] for c in inspect(engine).get_columns("asset_path")}
    with session_scope(engine) as db:
        (entry,) = path_index(db, "/lib/").values()
        assert entry["asset_id"] == 1 and entry["status"] == "done"
        assert all(entry[c] is None for c in STAT)
        # the full signed 64-bit range round-trips (inode and device are folded into it)
        set_path_stat(db, "/lib/a.mp4", size_bytes=2**40, mtime_ns=1_764_000_000_123_456_789,
                      inode=-(2**63), device=2**63 - 1)
    with session_scope(engine) as db:
        entry = path_index(db, "/lib/")["/lib/a.mp4"]
        assert (entry["size_bytes"], entry["mtime_ns"], entry["inode"], entry["device"]) == \
            (2**40, 1_764_000_000_123_456_789, -(2**63), 2**63 - 1)
        assert path_index(db, "/lib_") == {} and path_index(db, "/li%") == {}  # LIKE escaped
    downgrade(db_url, "0007")
    assert not STAT & {c["name"] for c in inspect(engine).get_columns("asset_path")}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT uri FROM asset_path")).scalar_one() == "/lib/a.mp4"
