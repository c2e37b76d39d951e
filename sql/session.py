"""Engines and the one transaction owner, ``session_scope``.

SQLite (the embedded default) gets WAL journaling (readers never block the writer), foreign
keys on and a busy timeout so concurrent processes wait instead of failing; PostgreSQL gets
pre-ping so a pool survives a server restart, and, once the server has been reached, new
connections wait for it (up to ``reconnect_s``, with backoff) instead of failing while it is
briefly down. The very first connection still fails at once: a wrong URL or a server that was
never up is a configuration error, not something to wait for.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any, Iterator

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker


log = logging.getLogger("stepfoley.db")


def make_engine(url: str, reconnect_s: float = 0.0) -> Engine:
    """An engine for ``url``; ``reconnect_s`` > 0 makes a server-based database's new
    connections wait that long for a server that went away (see the module docstring)."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            from pathlib import Path

            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            # pysqlite's implicit BEGIN defers locking; BEGIN IMMEDIATE below takes the write
            # lock up front so two writers serialise instead of deadlocking on upgrade.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):  # type: ignore[no-untyped-def]
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    connect_args = {} if "connect_timeout" in u.query else {"connect_timeout": 10}
    engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10,
                           connect_args=connect_args)
    if reconnect_s > 0:
        _wait_for_server(engine, reconnect_s)
    return engine


def _wait_for_server(engine: Engine, reconnect_s: float) -> None:
    """Retry refused connections (server stopped, restarting, shutting down) with backoff."""
    reached = threading.Event()

    @event.listens_for(engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        if not reached.is_set():
            conn = dialect.connect(*cargs, **cparams)
            reached.set()
            return conn
        deadline = time.monotonic() + reconnect_s
        delay, warned = 0.25, False
        while True:
            try:
                conn = dialect.connect(*cargs, **cparams)
            except dialect.loaded_dbapi.OperationalError as exc:
                if time.monotonic() + delay > deadline:
                    raise
                if not warned:
                    log.warning("database unreachable (%s); retrying for up to %.0f s",
                                " ".join(str(exc).split())[:200], reconnect_s)
                    warned = True
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if warned:
                log.warning("database reachable again")
            return conn


_factories: dict[int, sessionmaker[Session]] = {}


@contextlib.contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session whose transaction commits on success and rolls back on any exception."""
    factory = _factories.get(id(engine))
    if factory is None:
        factory = _factories[id(engine)] = sessionmaker(engine, expire_on_commit=False)
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
