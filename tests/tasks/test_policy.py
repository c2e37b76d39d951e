"""The retry policy: database connection loss and I/O hiccups are transient, bad input never is;
``retry_db`` re-runs a bookkeeping call only while the connection is lost."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from tasks import policy
from tasks.errors import MediaError, TransientError
from tasks.policy import is_db_connection_error, is_transient, retry_db


def _lost() -> OperationalError:
    return OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))


@pytest.mark.parametrize("exc, transient", [
    (_lost(), True),
    (TransientError("gpu busy"), True),
    (ConnectionResetError("reset"), True),
    (RuntimeError("CUDA out of memory"), True),
    (MediaError("clip.mp4: no video stream"), False),
    (FileNotFoundError("gone.mp4"), False),
    (IntegrityError("INSERT", {}, Exception("duplicate key")), False),
    (ValueError("bad"), False),
])
def test_transient_or_not(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient


def test_the_default_backoff_spans_a_database_restart() -> None:
    assert sum(policy.DB_RETRY_DELAYS_S) >= 30


def test_only_connection_errors_count_as_db_connection_errors() -> None:
    assert is_db_connection_error(_lost())
    assert not is_db_connection_error(IntegrityError("INSERT", {}, Exception("dup")))
    assert not is_db_connection_error(OSError("disk"))


def test_retry_db_reruns_while_the_connection_is_lost() -> None:
    calls: list[int] = []

    @retry_db(delays=(0.0, 0.0, 0.0))
    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise _lost()
        return "ok"

    assert flaky() == "ok" and len(calls) == 3


def test_retry_db_gives_up_and_never_retries_bad_input() -> None:
    calls: list[str] = []

    @retry_db(delays=(0.0, 0.0))
    def down() -> None:
        calls.append("down")
        raise _lost()

    @retry_db(delays=(0.0, 0.0))
    def bad() -> None:
        calls.append("bad")
        raise MediaError("clip.mp4: not a video")

    with pytest.raises(OperationalError):
        down()
    assert calls.count("down") == 3  # first try + one per delay
    with pytest.raises(MediaError):
        bad()
    assert calls.count("bad") == 1
