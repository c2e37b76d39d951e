"""Migrations: one head, upgrade from empty, downgrade one step and back, schema == models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from sql.migrate import current, downgrade, heads, upgrade, view_files
from sql.schema import Base
from sql.session import make_engine

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
    upgrade(db_url)
    upgrade(db_url)
    with make_engine(db_url).connect() as conn:
        for v in sorted(VIEWS):
            conn.execute(text(f"SELECT * FROM {v}")).all()


def test_downgrade_one_step_and_upgrade_again(db_url: str) -> None:
    upgrade(db_url)
    downgrade(db_url, "-1")
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
