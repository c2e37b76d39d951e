"""Opening the provenance database for a run: migrate, then hand out the engine.

Connection problems at start-up are configuration errors (the user gave a wrong URL or the
server is down), reported as one line; later connection losses are transient: new connections
wait for the server (``Settings.db_reconnect_s``), and what still fails is retried by the task
policy.
"""

from __future__ import annotations

import functools

from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, OperationalError, NoSuchModuleError

from tasks.config import ConfigError, Settings


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return " ".join(text.split())[:300]


@functools.lru_cache(maxsize=8)
def _engine_for(url: str, reconnect_s: float) -> Engine:
    from sql.session import make_engine

    return make_engine(url, reconnect_s=reconnect_s)


def open_database(settings: Settings, *, migrate: bool = True) -> Engine:
    """Engine for ``settings.db_url`` with the schema at head (idempotent)."""
    url = settings.db_url
    try:
        engine = _engine_for(url, float(settings.db_reconnect_s))
        with engine.connect():
            pass
        if migrate:
            from sql.migrate import upgrade

            upgrade(url)
    except (ArgumentError, NoSuchModuleError) as exc:
        raise ConfigError(f"database URL {url!r} is not valid: {_short(exc)}") from exc
    except OperationalError as exc:
        raise ConfigError(f"cannot reach database {redact(url)}: {_short(exc)}") from exc
    return engine


def redact(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url
