"""Migrations (Alembic) and views for a database URL, as library calls.

Views live in ``sql/views/*.sql`` (plain SQL that both SQLite and PostgreSQL accept) and are
written for the head schema: every migration runs with them dropped, and they are re-created
(DROP VIEW IF EXISTS + CREATE VIEW) after an upgrade that reaches the head, so they always
match the schema the migrations produced (a database left at an older revision has none).
An advisory lock (PostgreSQL) or the write lock (SQLite) keeps two processes from migrating at
once.

On SQLite, a migration that must rebuild a table (batch mode: copy, drop, rename) runs with
foreign-key enforcement off, SQLite's own procedure for schema changes: otherwise dropping the
old copy of a table would fire the ON DELETE actions of the rows that point at it (cascading
deletes, SET NULL). ``PRAGMA foreign_key_check`` runs before the commit, so a migration that
breaks a reference fails and rolls back instead of committing it.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import Iterator

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from sql.session import make_engine

HERE = Path(__file__).resolve().parent
VIEWS = HERE / "views"
_LOCK_KEY = 0x5F01E7  # arbitrary, constant: "stepfoley migrations"


def alembic_config(url: str) -> Config:
    cfg = Config(str(HERE / "alembic.ini"))
    cfg.set_main_option("script_location", str(HERE / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def heads() -> list[str]:
    return list(_heads())


@functools.lru_cache(maxsize=1)
def _heads() -> tuple[str, ...]:
    # Alembic compiles every migration file to find the heads (~60 ms); they do not change
    # while a process runs, and every command that opens the database asks.
    return tuple(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


def current(url: str) -> str | None:
    engine = _engine(url)
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@functools.lru_cache(maxsize=16)
def _engine(url: str):  # type: ignore[no-untyped-def]
    return make_engine(url)


def upgrade(url: str, revision: str = "head") -> None:
    """Upgrade to ``revision`` and, at the head, (re)create the views; a no-op when already there."""
    engine = _engine(url)
    head = heads()
    if revision == "head" and current(url) in head and _views_present(engine):
        return
    with _migrating(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
        drop_views(conn)
        cfg = alembic_config(url)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        if MigrationContext.configure(conn).get_current_revision() in head:
            create_views(conn)


def downgrade(url: str, revision: str = "-1") -> None:
    engine = _engine(url)
    with _migrating(engine) as conn:
        drop_views(conn)
        cfg = alembic_config(url)
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


@contextlib.contextmanager
def _migrating(engine: Engine) -> Iterator[Connection]:
    """One transaction for a migration; on SQLite with foreign keys off (module docstring)."""
    if engine.dialect.name != "sqlite":
        with engine.begin() as conn:
            yield conn
        return
    with engine.connect() as conn:
        # Outside any transaction: SQLite ignores this pragma inside one.
        conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        try:
            with conn.begin():
                yield conn
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"migration left broken references (table, rowid, parent): "
                                       f"{[tuple(r[:3]) for r in broken[:5]]}")
        finally:
            conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]


def view_files() -> list[Path]:
    return sorted(VIEWS.glob("*.sql"))


def drop_views(conn) -> None:  # type: ignore[no-untyped-def]
    for f in reversed(view_files()):
        conn.execute(text(f"DROP VIEW IF EXISTS {f.stem}"))


def create_views(conn) -> None:  # type: ignore[no-untyped-def]
    drop_views(conn)
    for f in view_files():
        conn.execute(text(f"CREATE VIEW {f.stem} AS\n{f.read_text().strip().rstrip(';')}"))


def _views_present(engine) -> bool:  # type: ignore[no-untyped-def]
    from sqlalchemy import inspect

    names = set(inspect(engine).get_view_names())
    return all(f.stem in names for f in view_files())
