"""The provenance database's engine: one per URL per process, migrated once, in one cache.

Connection problems at start-up are configuration errors (the user gave a wrong URL or the
server is down), reported as one line; later connection losses are transient: new connections
wait for the server (``Settings.db_reconnect_s``), and what still fails is retried by the task
policy.
"""

from __future__ import annotations

import threading

from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from sql.migrate import upgrade
from sql.session import make_engine
from tasks.config import ConfigError, Settings

# URL → engine. The first caller's reconnect budget is the engine's (one process, one budget).
_engines: dict[str, Engine] = {}
_migrated: set[str] = set()
_lock = threading.Lock()


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return " ".join(text.split())[:300]


def engine_for_url(url: str, reconnect_s: float = 0.0) -> Engine:
    """The process's engine for ``url`` (created on first use; not migrated, not connected)."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            try:
                engine = _engines[url] = make_engine(url, reconnect_s=reconnect_s)
            except (ArgumentError, NoSuchModuleError) as exc:
                raise ConfigError(f"database URL {url!r} is not valid: {_short(exc)}") from exc
        return engine


def open_database(settings: Settings, *, migrate: bool = True) -> Engine:
    """Engine for ``settings.db_url``, reachable, with the schema at head (idempotent)."""
    url = settings.db_url
    engine = engine_for_url(url, float(settings.db_reconnect_s))
    try:
        with engine.connect():
            pass
        if migrate:
            upgrade(url)
            _migrated.add(url)
    except (ArgumentError, NoSuchModuleError) as exc:
        raise ConfigError(f"database URL {url!r} is not valid: {_short(exc)}") from exc
    except OperationalError as exc:
        raise ConfigError(f"cannot reach database {redact(url)}: {_short(exc)}") from exc
    return engine


def migrated_engine(settings: Settings) -> Engine:
    """The engine of a run: migrated on first use in this process, then straight from the cache."""
    url = settings.db_url
    if url in _migrated:
        return engine_for_url(url)
    return open_database(settings, migrate=True)


def redact(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url
