"""The retry policy of every task (and of the flows' own database calls): retry transient
failures, never bad input.

Transient: I/O errors other than a missing/forbidden file, database connection loss
(SQLAlchemy ``OperationalError``/``DisconnectionError``, psycopg ``OperationalError``),
accelerator out-of-memory, and our own :class:`~tasks.errors.TransientError`. Everything else
(``MediaError``, programming errors, bad configuration) fails at once, so a corrupt file is
recorded once instead of being decoded three times.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Callable, ParamSpec, Sequence, TypeVar, overload

from tasks.errors import MediaError, TransientError

P = ParamSpec("P")
R = TypeVar("R")
_PERMANENT_OS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


def is_db_connection_error(exc: BaseException) -> bool:
    """Lost or refused database connection (SQLAlchemy or psycopg), not a bad statement."""
    name = type(exc).__name__
    module = type(exc).__module__
    return name in {"OperationalError", "DisconnectionError", "InterfaceError"} and (
        module.startswith("sqlalchemy") or module.startswith("psycopg"))


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, MediaError):
        return False
    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, OSError):
        return not isinstance(exc, _PERMANENT_OS)
    if is_db_connection_error(exc):
        return True
    if type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower():
        return True
    return False


# Backoff of the bookkeeping calls flows make outside tasks (claims, run rows, summaries):
# 1 + 2 + 4 + 8 + 15 = 30 s on top of the connection wait of sql.session.
DB_RETRY_DELAYS_S = (1.0, 2.0, 4.0, 8.0, 15.0)


@overload
def retry_db(fn: Callable[P, R], *, delays: Sequence[float] | None = None) -> Callable[P, R]: ...


@overload
def retry_db(fn: None = None, *,
             delays: Sequence[float] | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def retry_db(fn: Callable[P, R] | None = None, *,
             delays: Sequence[float] | None = None) -> Any:
    """Re-run ``fn`` (one idempotent database unit of work) while its connection is lost,
    sleeping ``delays`` (default ``DB_RETRY_DELAYS_S``) between tries; any other error, and
    the last connection error, propagate. ``@retry_db`` or ``@retry_db(delays=...)``."""
    if fn is None:
        return functools.partial(retry_db, delays=delays)
    pauses = tuple(DB_RETRY_DELAYS_S if delays is None else delays)

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        for delay in (*pauses, None):
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                if delay is None or not is_db_connection_error(exc):
                    raise
                time.sleep(delay)
        raise AssertionError("unreachable")

    return wrapper


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """``retry_condition_fn`` for Prefect tasks."""
    try:
        state.result()
    except BaseException as exc:  # the state's exception is re-raised by result()
        return is_transient(exc)
    return False


# ---------------------------------------------------------------- the tasks' options
# Every Prefect task (tasks/prefect_tasks.py) takes its retries from one of these, by name, and
# its time limit from the two below; its cache policy comes from tasks/stage_cache.py.

# A stage on this machine (files, ffmpeg, the database, the CPU models): transient failures are
# retried with backoff 2 + 10 + 30 s, which covers a database restart.
CPU_STAGE: dict[str, Any] = {"retries": 3, "retry_delay_seconds": [2, 10, 30],
                             "retry_condition_fn": retry_transient}
# Generation on a device (a window, a regenerated take): minutes of work per try, so two
# retries, the second after 30 s that let another process's memory on the device drain (OOM).
GPU_STAGE: dict[str, Any] = {"retries": 2, "retry_delay_seconds": [5, 30],
                             "retry_condition_fn": retry_transient}
# Time limits of one stage on one asset: a library walk, shot detection, captioning or a window
# on a slow device may take long; hashing, probing, mixing and muxing never should.
LONG_STAGE_S = 3600
SHORT_STAGE_S = 1800


class _ThreadTimeoutNotice:
    """Drop Prefect's per-task notice that timeouts in worker threads only fire after blocking
    I/O returns: stepfoley's stage work is subprocess/torch bound and the notice repeats for
    every task of every asset, drowning real warnings."""

    def filter(self, record: Any) -> bool:
        return "running in a worker thread" not in record.getMessage()


def quiet_thread_timeout_notice() -> None:
    import logging

    for name in ("prefect.task_runs", "prefect"):
        logging.getLogger(name).addFilter(_ThreadTimeoutNotice())


quiet_thread_timeout_notice()
