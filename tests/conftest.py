"""Test-session isolation: every run gets its own data dir and Prefect home, offline."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_SESSION_TMP = Path(tempfile.mkdtemp(prefix="stepfoley-tests-"))
os.environ.setdefault("STEPFOLEY_DATA_DIR", str(_SESSION_TMP / "data"))
os.environ.setdefault("PREFECT_HOME", str(_SESSION_TMP / "prefect"))
# The machine cache (the migrated Prefect database template) is the session's too.
os.environ.setdefault("STEPFOLEY_CACHE_DIR", str(_SESSION_TMP / "cache"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

REPO_ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO_ROOT / "test-artifacts"

import itertools  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def pg_cluster():  # type: ignore[no-untyped-def]
    from tests.pg import start_cluster

    root = Path(tempfile.mkdtemp(prefix="stepfoley-pg-"))
    os.chmod(root, 0o755)
    cluster = start_cluster(root / "cluster")
    yield cluster
    cluster.stop()


_db_names = itertools.count()


@pytest.fixture
def postgres_url(pg_cluster) -> str:  # type: ignore[no-untyped-def]
    """A fresh database in the session's throwaway cluster."""
    return pg_cluster.createdb(f"t{os.getpid()}_{next(_db_names)}")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each DB test runs on SQLite and on a real PostgreSQL."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")


def pytest_configure(config: pytest.Config) -> None:
    # Two torch threads on a busy 2-core box are far slower than one; tests measure behaviour.
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
