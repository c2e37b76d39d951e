"""The embedded run's Prefect API: Prefect's ephemeral server, forked from this process early.

Without ``PREFECT_API_URL``, Prefect runs flows against an ephemeral API server that it starts
the first time a flow needs the API (``SubprocessASGIServer``: uvicorn in a new Python process,
bound to 127.0.0.1), and the flow waits for it. On the 2-core box that start took 2.5 s with a
used data dir and 5–8 s with a new one (docs/performance.md): the new interpreter imports the
whole server again (~2 s, though this process has already imported it: Prefect's client
does), then migrates the SQLite database (~2.5 s the first time) and registers the block
types (~0.6 s the first time). A new data dir's database is now copied from a migrated
template instead (flows/prefect_db_seed.py; the server builds the template the first time).

``start_local_api`` serves the same application (``create_app``, ephemeral: no UI, the
ephemeral set of services) from a child *forked* from this process, which has the server's
modules loaded already, on 127.0.0.1 and a port bound before the fork; it does so before the
flow starts, so the start overlaps the work that needs no API (loading the models,
flows/cli_run.py). The server is still a process of its own (its request handling and
services never compete with the run for this process's GIL). It registers as the process's
ephemeral server, the instance every ``SubprocessASGIServer()`` call in Prefect returns (as
Prefect's own test harness does), so Prefect's calls find it and wait until it is ready; the
process exit stops it after Prefect's exit handlers have drained their events and logs, and
the child also ends when its parent dies (a ``kill -9``ed run used to leave its server behind).

Forking is only safe without other threads running Python: when the process has some (or is
not on Linux), nothing is forked and Prefect starts its subprocess as it always did.

For this server only:

* block types are not registered at start-up: nothing in an embedded run stores a block
  (results go to a path, tasks/stage_cache.py), and a ``prefect server start`` on the same
  database registers them itself;
* flow-run heartbeats are off (``local_run_settings``): they are events for the server's
  detection of runs whose process died, and this server dies with that process. Each flow run
  also waited up to 1 s at its end for the heartbeat thread.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import select
import signal
import socket
import sys
import threading
import time
from typing import Iterator

from prefect.server.api.server import SubprocessASGIServer

from flows.prefect_db_seed import build_template, seed_database

_PR_SET_PDEATHSIG = 1


class _Child:
    """The forked server as Prefect sees its subprocess (``server_process``)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped already
                self.returncode = 0
            else:
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM (uvicorn shuts down gracefully), SIGKILL after ``timeout``; reaped."""
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            if self.poll() is not None:
                return
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)
            deadline = time.monotonic() + wait
            while self.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)


def _can_fork() -> bool:
    """One Python thread, the main one (the child's death signal is tied to the thread that
    forked it), on Linux. Native threads of numeric libraries' pools (OpenBLAS, torch) may
    exist: idle, they hold no locks, and the child never uses those libraries."""
    return (sys.platform.startswith("linux") and threading.active_count() == 1
            and threading.current_thread() is threading.main_thread())


class ForkedAPIServer(SubprocessASGIServer):
    """Prefect's ephemeral API served by uvicorn in a child forked from this process."""

    def __init__(self, port: int | None = None) -> None:
        if hasattr(self, "_initialized"):
            return
        super().__init__(port)
        self._lock = threading.Lock()
        self._ready_fd: int | None = None
        self._ready = False
        self._forked = False

    def launch(self) -> None:
        """Fork the server (once, when it is safe); ``start`` waits until it serves."""
        with self._lock:
            if self.running or not _can_fork():
                return
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))  # loopback only; free, and held from here on
            self.port = sock.getsockname()[1]
            read_fd, write_fd = os.pipe()
            parent = os.getpid()
            sys.stdout.flush()
            sys.stderr.flush()
            # The child's collector then leaves the inherited objects (and their pages) alone.
            gc.freeze()
            try:
                pid = os.fork()
            except OSError:  # leave it to Prefect's subprocess
                gc.unfreeze()
                for fd in (read_fd, write_fd):
                    os.close(fd)
                sock.close()
                self.port = None
                return
            if pid == 0:  # the server
                code = 1
                try:
                    os.close(read_fd)
                    _serve(sock, write_fd, parent)
                    code = 0
                except BaseException:
                    import traceback

                    traceback.print_exc()
                finally:
                    os._exit(code)
            gc.unfreeze()
            os.close(write_fd)
            sock.close()
            self._ready_fd = read_fd
            self._forked = True
            self.server_process = _Child(pid)  # type: ignore[assignment]
            self.running = True
            atexit.register(self.stop)

    def start(self, timeout: int | None = None) -> None:
        """Wait until the server is serving (Prefect's own start when nothing was forked)."""
        if not self._forked:
            return super().start(timeout)
        from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS

        with self._lock:
            if self._ready:
                return
            limit = timeout or PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()
            readable, _, _ = select.select([self._ready_fd], [], [], limit)
            if not readable:
                raise RuntimeError("Timed out while attempting to connect to ephemeral Prefect "
                                   "API server.")
            if os.read(self._ready_fd, 1) != b"1":  # end of file: the child is gone
                raise RuntimeError("the ephemeral Prefect API server exited while starting "
                                   f"(exit code {self.server_process.poll()})")
            os.close(self._ready_fd)
            self._ready = True

    def stop(self) -> None:
        if not self._forked:
            return super().stop()
        if self.server_process is not None:
            self.server_process.stop()  # type: ignore[attr-defined]
            self.server_process = None
        if self._instances.get(self._instance_key) is self:
            del self._instances[self._instance_key]
        self.running = False


def _serve(sock: socket.socket, ready_fd: int, parent: int) -> None:
    """The child: serve the ephemeral API on ``sock``; write b"1" to ``ready_fd`` once serving."""
    import ctypes
    import functools

    import uvicorn
    from prefect.server.api.server import create_app
    from prefect.settings import PREFECT_API_BLOCKS_REGISTER_ON_START, temporary_settings

    with contextlib.suppress(OSError, AttributeError):  # end with the parent, even a kill -9
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the line above
        return
    try:  # first new data dir of this Prefect version on the machine: keep its migrated db
        build_template()
    except Exception as exc:  # noqa: BLE001 (the server's own start migrates and reports)
        print(f"stepfoley: no Prefect database template: {exc}", file=sys.stderr)
    app = functools.partial(create_app, ephemeral=True)  # no UI, the ephemeral services
    config = uvicorn.Config(app, factory=True, log_level="error", lifespan="on",
                            loop="asyncio", access_log=False)
    server = uvicorn.Server(config)

    def notify() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.005)
        if server.started:
            os.write(ready_fd, b"1")
        os.close(ready_fd)

    threading.Thread(target=notify, daemon=True).start()
    with temporary_settings(updates={PREFECT_API_BLOCKS_REGISTER_ON_START: False}):
        server.run(sockets=[sock])


def start_local_api() -> SubprocessASGIServer | None:
    """Launch this process's ephemeral API now, when it will use one (no ``PREFECT_API_URL``).

    Returns the server (its ``start()`` waits until it serves), or None when the API is a
    configured one."""
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_ALLOW_EPHEMERAL_MODE

    if PREFECT_API_URL.value() or not PREFECT_SERVER_ALLOW_EPHEMERAL_MODE.value():
        return None
    seed_database()  # a new data dir: the migrated template instead of ~3 s of migrations
    # The process-wide ephemeral server: a new one unless Prefect already started its own.
    server = ForkedAPIServer()
    if isinstance(server, ForkedAPIServer):
        server.launch()
    return server


@contextlib.contextmanager
def local_run_settings(api: SubprocessASGIServer | None) -> Iterator[None]:
    """Settings for flows run against this process's ephemeral API (see the module docstring)."""
    if api is None:
        yield
        return
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield
