"""Window leases: how the caller of a deferred window tells a dead GPU agent from a busy one.

A GPU agent that takes a batch of windows (a deferred Prefect task run) holds a lease for each
window, under a key the caller chose for that dispatch:

    DATA_DIR/leases/<lease key>.json = {"owner": "host:pid", "expires_at": t_renew + ttl,
                                         ...what the holder says it works on (the window)}

written at start and renewed every ttl/3 by one heartbeat thread for the batch (temp file +
rename, so a reader sees the old or the new record, never half of one), removed when the batch
ends. Prefect records no liveness for task runs: an agent killed mid-window leaves its run
RUNNING forever (or SCHEDULED, when its state events died with it). The caller waiting for
the batch therefore reads its leases (tasks/batch_liveness.py): a lease expired, whatever the
run's recorded state, belongs to a dead agent, and the batch is dispatched again, as the same
windows; the new attempt resumes from
the tracks already recorded (tasks/generate.py), so the result is the same as an
uninterrupted run. The recovery time is
bounded by ttl (+ one caller poll), not by a person.

The lease lives in the shared data directory (every agent and caller has it: stems are
written there) rather than the provenance database: it is liveness, not provenance, and a
renewal every few seconds per agent would be write traffic the record of truth does not need.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any


def lease_path(data_dir: Path, key: str) -> Path:
    return Path(data_dir) / "leases" / f"{key}.json"


def owner_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _write(path: Path, owner: str, ttl_s: float, about: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({**about, "owner": owner, "expires_at": time.time() + ttl_s}))
    os.replace(tmp, path)


@contextlib.contextmanager
def hold_lease(path: Path, ttl_s: float, about: Mapping[str, Any] | None = None) -> Iterator[None]:
    """Hold the lease at ``path`` (renewed at ttl/3) until the block ends, then drop it.

    ``about`` (JSON values) goes into the record, so an operator looking at a lease (or at a
    dead agent's) sees which window it was."""
    with hold_leases([path], ttl_s, [about or {}]):
        yield


@contextlib.contextmanager
def hold_leases(paths: Sequence[Path], ttl_s: float,
                abouts: Sequence[Mapping[str, Any]] | None = None) -> Iterator[None]:
    """Hold one lease per window of a batch, renewed together by one heartbeat thread (the
    batch lives or dies as one process), all dropped when the block ends."""
    owner = owner_name()
    records = [dict(a) for a in (abouts or [{}] * len(paths))]
    for path, about in zip(paths, records):
        _write(path, owner, ttl_s, about)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(ttl_s / 3):
            for path, about in zip(paths, records):
                try:
                    _write(path, owner, ttl_s, about)
                except OSError:  # a missed beat only shortens the lease; the next one retries
                    pass

    t = threading.Thread(target=beat, name="window-lease", daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join(timeout=5)
        for path in paths:
            path.unlink(missing_ok=True)


def lease_record(path: Path) -> dict[str, Any] | None:
    """The lease at ``path`` as last written, None when there is none; ``{}`` when it cannot
    be read right now (an agent on another host replacing it over a network file system:
    read again at the next poll). Whether it has lapsed is the caller's verdict
    (tasks/batch_liveness.py)."""
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


# --- server outages, as the agents saw them -------------------------------------------------
# A restarted Prefect server has lost its in-memory queue of deferred task runs: a window that
# was queued (SCHEDULED, not yet delivered) will never reach an agent. Every agent sees the
# restart (its subscription socket drops) and records it here when it is connected again:
#
#     DATA_DIR/leases/agents/<host:pid>.json = {"lost_at": t_drop, "back_at": t_reconnected}
#
# A caller treats a window it deferred before the latest ``lost_at`` that is still SCHEDULED
# (and holds no lease) as lost with the queue and defers it again (flows/generate_window.py).


def agents_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "leases" / "agents"


def record_reconnect(data_dir: Path, lost_at: float, back_at: float) -> None:
    """This agent's connection to the server was lost at ``lost_at`` and is back at ``back_at``."""
    path = agents_dir(data_dir) / f"{owner_name()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"lost_at": lost_at, "back_at": back_at}))
    os.replace(tmp, path)


def queue_lost_at(data_dir: Path) -> float | None:
    """When an agent last lost the server (after which it reconnected), or None if never."""
    latest: float | None = None
    folder = agents_dir(data_dir)
    for p in folder.glob("*.json") if folder.is_dir() else ():
        try:
            t = float(json.loads(p.read_text())["lost_at"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being replaced: the next poll reads it
        latest = t if latest is None else max(latest, t)
    return latest
