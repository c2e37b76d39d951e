"""Migrations: one head, upgrade from empty, downgrade one step and back, schema == models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from sql import repository as r
from sql.migrate import current, downgrade, heads, upgrade, view_files
from sql.schema import Base, utcnow
from sql.session import make_engine, session_scope

VIEWS = {"v_asset_progress", "v_failures", "v_throughput_daily", "v_generation_seconds_daily"}


def test_single_head() -> None:
    assert len(heads()) == 1


def test_upgrade_from_empty_creates_tables_and_views(db_url: str) -> None:
    upgrade(db_url)
    insp = inspect(make_engine(db_url))
    assert set(Base.metadata.tables) <= set(insp.get_table_names())
    assert VIEWS <= set(insp.get_view_names())
    assert {f.stem for f in view_files()} == VIEWS
    assert current(db_url) == heads()[0]


def test_upgrade_is_idempotent_and_views_query(db_url: str) -> None:
    """A second upgrade keeps the head and the rows; each view then reports those rows."""
    upgrade(db_url)
    engine = make_engine(db_url)
    with session_scope(engine) as s:
        a = r.upsert_asset(s, sha256="ab" * 32, uri="/lib/a.mp4", duration_s=12.5)
        sc = r.upsert_window(s, asset_id=a["id"], shot_index=0, window_index=0, start_s=0.0, end_s=8.0)
        r.upsert_window(s, asset_id=a["id"], shot_index=0, window_index=1, start_s=6.0, end_s=12.5)
        r.upsert_track(s, window_id=sc["id"], order=1, version=1, prompt_text="rain", seed=1,
                       alpha=4.5, beta=1.5, steps=25, mode="nag", bundle_id="b@1",
                       weights_sha256="w" * 64, config_hash="c" * 16, stem_uri="/s.flac",
                       stem_sha256="s" * 64, wall_s=2.5, device="cpu@h", finished_at=utcnow())
        r.set_asset_status(s, a["id"], "done")
        run = r.start_run(s, kind="local")
        r.record_failure(s, run_id=run, asset_id=a["id"], uri="/lib/b.mp4", stage="ingest",
                         error_class="MediaError", message="no video stream")
    upgrade(db_url)
    assert current(db_url) == heads()[0]
    with engine.connect() as conn:
        rows = {v: [dict(m) for m in conn.execute(text(f"SELECT * FROM {v}")).mappings()]
                for v in sorted(VIEWS)}
    (progress,) = rows["v_asset_progress"]
    assert (progress["status"], progress["scenes"], progress["windows"], progress["tracks"],
            progress["model_seconds"]) == ("done", 1, 2, 1, 2.5)
    (failure,) = rows["v_failures"]
    assert (failure["asset_sha256"], failure["run_kind"], failure["message"]) == \
        ("ab" * 32, "local", "no video stream")
    (daily,) = rows["v_throughput_daily"]
    assert (daily["assets"], daily["footage_seconds"], daily["scenes"], daily["windows"],
            daily["tracks"]) == (1, 12.5, 1, 2, 1)
    (gen,) = rows["v_generation_seconds_daily"]
    assert (gen["device"], gen["tracks"], gen["model_seconds"]) == ("cpu@h", 1, 2.5)


def test_downgrade_one_step_and_upgrade_again(db_url: str) -> None:
    upgrade(db_url)
    downgrade(db_url, "-1")
    assert current(db_url) != heads()[0]
    downgrade(db_url, "base")
    assert current(db_url) is None
    assert "asset" not in inspect(make_engine(db_url)).get_table_names()
    upgrade(db_url)
    assert current(db_url) == heads()[0]


def test_migrations_match_the_models(db_url: str) -> None:
    upgrade(db_url)
    with make_engine(db_url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}),
                                Base.metadata)
    assert diff == []
