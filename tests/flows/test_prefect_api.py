"""The embedded run's forked Prefect API server (flows/prefect_api.py): loopback only, found by
Prefect's own calls, stopped at exit, and gone with its parent after a ``kill -9``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

# In a fresh interpreter: the test process has threads, and then nothing is forked.
SERVE = """
import os, sys, httpx
from flows.prefect_api import ForkedAPIServer, start_local_api
from prefect.client.orchestration import get_client
from prefect.server.api.server import SubprocessASGIServer

server = start_local_api()
assert isinstance(server, ForkedAPIServer) and SubprocessASGIServer() is server
server.start()
with get_client(sync_client=True) as client:  # Prefect's own path finds the forked server
    assert client.api_url == server.api_url + "/", (client.api_url, server.api_url)
    assert client.api_healthcheck() is None
assert server.address.startswith("http://127.0.0.1:")
port = server.port
listening = [l.split() for l in open("/proc/net/tcp").read().splitlines()[1:]]
mine = [l[1] for l in listening if l[3] == "0A" and int(l[1].split(":")[1], 16) == port]
assert mine == ["0100007F:%04X" % port], mine  # bound to 127.0.0.1 only
print(server.server_process.pid, flush=True)
if sys.argv[1] == "wait":
    import time
    time.sleep(600)
"""


def _serve(mode: str, tmp_path: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PYTHONPATH": str(REPO_ROOT)}
    env.pop("PREFECT_API_URL", None)
    return subprocess.Popen([sys.executable, "-c", SERVE, mode], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forks on Linux only")
def test_forked_server_serves_on_loopback_and_stops_at_exit(tmp_path: Path) -> None:
    proc = _serve("exit", tmp_path)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-3000:]
    child = int(out.split()[-1])
    assert not _alive(child)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forks on Linux only")
def test_forked_server_ends_with_a_killed_parent(tmp_path: Path) -> None:
    proc = _serve("wait", tmp_path)
    try:
        child = int(proc.stdout.readline())  # type: ignore[union-attr]
        assert _alive(child)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 20
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(child)
    finally:
        proc.kill()
        proc.communicate(timeout=30)


def test_no_local_server_for_a_configured_api() -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.prefect_api import start_local_api

    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        assert start_local_api() is None


# A flow run against the server, then what the Prefect database holds.
FLOW = """
import json, sqlite3, sys
from pathlib import Path
from flows.prefect_db_seed import sqlite_path, template_path
db = sqlite_path()
existed = db.exists()
from flows.prefect_api import start_local_api
server = start_local_api()
seeded = not existed and db.exists()  # start_local_api copied the template in
server.start()
from prefect import flow

@flow
def add(a: int, b: int) -> int:
    return a + b

assert add(2, 3) == 5
con = sqlite3.connect(db)
runs = con.execute("select count(*) from flow_run where state_type = 'COMPLETED'").fetchone()[0]
head = con.execute("select version_num from alembic_version").fetchall()
print(json.dumps({"seeded": seeded, "runs": runs, "head": head,
                  "template": template_path().is_file()}))
"""


def _flow_in_new_home(home: Path, cache: Path) -> dict:
    import json

    env = {**os.environ, "PREFECT_HOME": str(home), "STEPFOLEY_CACHE_DIR": str(cache),
           "PYTHONPATH": str(REPO_ROOT)}
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.run([sys.executable, "-c", FLOW], cwd=REPO_ROOT, env=env, timeout=300,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forks on Linux only")
def test_new_data_dirs_get_the_migrated_database_template(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = _flow_in_new_home(tmp_path / "a", cache)
    assert first == {**first, "seeded": False, "runs": 1, "template": True}
    (template,) = cache.iterdir()
    assert template.name.startswith("prefect-") and template.suffix == ".db"
    second = _flow_in_new_home(tmp_path / "b", cache)
    # Copied, not migrated, and at the same head: the flow run is recorded as in a migrated db.
    assert second == {**first, "seeded": True}
    assert template.stat().st_size > 0 and list(cache.iterdir()) == [template]


def test_seeding_never_replaces_an_existing_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL, temporary_settings

    from flows.prefect_db_seed import seed_database, template_path

    import sqlite3

    monkeypatch.setenv("STEPFOLEY_CACHE_DIR", str(tmp_path / "cache"))
    template_path().parent.mkdir(parents=True)
    with sqlite3.connect(template_path()) as con:  # a rollback-journal file, as templates are
        con.execute("create table marker (x)")
    db = tmp_path / "home" / "prefect.db"
    with temporary_settings(updates={PREFECT_API_DATABASE_CONNECTION_URL: f"sqlite+aiosqlite:///{db}"}):
        assert seed_database() is True
        con = sqlite3.connect(db)
        assert con.execute("select name from sqlite_master").fetchall() == [("marker",)]
        assert con.execute("pragma journal_mode").fetchone() == ("wal",)  # as Prefect leaves it
        con.close()
        db.write_bytes(b"in use")
        assert seed_database() is False and db.read_bytes() == b"in use"
        assert sorted(p.name for p in db.parent.iterdir()) == ["prefect.db"]  # no temp left
    with temporary_settings(updates={PREFECT_API_DATABASE_CONNECTION_URL: "postgresql+asyncpg://u@127.0.0.1/p"}):
        assert seed_database() is False
