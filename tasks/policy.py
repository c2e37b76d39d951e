"""The retry policy of every task: retry transient failures, never bad input.

Transient: I/O errors other than a missing/forbidden file, database connection loss
(SQLAlchemy ``OperationalError``/``DisconnectionError``, psycopg ``OperationalError``),
accelerator out-of-memory, and our own :class:`~tasks.errors.TransientError`. Everything else
(``MediaError``, programming errors, bad configuration) fails at once, so a corrupt file is
recorded once instead of being decoded three times.
"""

from __future__ import annotations

from typing import Any

from tasks.errors import MediaError, TransientError

_PERMANENT_OS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, MediaError):
        return False
    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, OSError):
        return not isinstance(exc, _PERMANENT_OS)
    name = type(exc).__name__
    module = type(exc).__module__
    if name in {"OperationalError", "DisconnectionError", "InterfaceError"} and (
            module.startswith("sqlalchemy") or module.startswith("psycopg")):
        return True
    if name == "OutOfMemoryError" or "out of memory" in str(exc).lower():
        return True
    return False


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """``retry_condition_fn`` for Prefect tasks."""
    try:
        state.result()
    except BaseException as exc:  # the state's exception is re-raised by result()
        return is_transient(exc)
    return False


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
