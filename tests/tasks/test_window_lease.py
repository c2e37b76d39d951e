"""Window leases (tasks/window_lease.py): alive while renewed, presumed dead once lapsed."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

from tasks.window_lease import (agents_dir, hold_lease, lease_path, lease_record, owner_name,
                                queue_lost_at, record_reconnect)


def test_a_held_lease_is_renewed_and_dropped(tmp_path: Path) -> None:
    path = lease_path(tmp_path, "k1")
    with hold_lease(path, ttl_s=0.6):
        first = json.loads(path.read_text())["expires_at"]
        time.sleep(0.5)  # past ttl/3: renewed at least once
        assert json.loads(path.read_text())["expires_at"] > first
        record = lease_record(path)
        assert record is not None and record["expires_at"] > time.time()
    assert not path.exists() and lease_record(path) is None


def test_a_lease_reads_as_written_missing_or_unreadable(tmp_path: Path) -> None:
    path = lease_path(tmp_path, "k2")
    assert lease_record(path) is None  # no leases dir at all
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"owner": "host:123", "expires_at": 5.0}))
    assert lease_record(path) == {"owner": "host:123", "expires_at": 5.0}
    path.write_text('{"owner": "h:1", "expi')  # half a record (a network file system)
    assert lease_record(path) == {}
    path.write_text("[1, 2]")  # not a record at all
    assert lease_record(path) == {}


def test_the_lease_record_names_its_owner_at_the_documented_path(tmp_path: Path) -> None:
    data_dir = tmp_path / "not" / "yet"  # the data dir itself may not exist yet
    path = lease_path(data_dir, "k3")
    assert path == data_dir / "leases" / "k3.json"
    with hold_lease(path, ttl_s=60.0):
        record = json.loads(path.read_text())
        assert record["owner"] == f"{socket.gethostname()}:{os.getpid()}"
        assert time.time() + 59 < record["expires_at"] <= time.time() + 60
        beats = [t for t in threading.enumerate() if t.name == "window-lease"]
        assert len(beats) == 1 and beats[0].daemon  # never keeps a dying agent alive
        path.unlink()  # removed by someone else meanwhile: ending the block must not fail
    assert not path.exists()
    assert not [t for t in threading.enumerate() if t.name == "window-lease"]  # stopped, not left


def test_renewal_comes_every_third_of_the_ttl(tmp_path: Path) -> None:
    path = lease_path(tmp_path, "k4")
    ttl = 1.2
    with hold_lease(path, ttl_s=ttl):
        first = json.loads(path.read_text())["expires_at"]
        deadline = time.time() + 5
        renewed = first
        while renewed == first and time.time() < deadline:
            time.sleep(0.01)
            try:
                renewed = json.loads(path.read_text())["expires_at"]
            except ValueError:
                pass
    # a timed wait never returns early, so the first renewal is at least ttl/3 after the start
    assert ttl / 3 - 0.02 <= renewed - first < 5


def test_the_record_says_which_window_and_keeps_saying_it(tmp_path: Path) -> None:
    path = lease_path(tmp_path, "k6")
    about = {"window_id": 7, "window": "2.1"}
    with hold_lease(path, ttl_s=0.3, about=about):
        first = json.loads(path.read_text())
        time.sleep(0.25)  # renewed at least once
        renewed = json.loads(path.read_text())
    for record in (first, renewed):
        assert record["window_id"] == 7 and record["window"] == "2.1"
        assert record["owner"] == owner_name()
    assert renewed["expires_at"] > first["expires_at"]
    # the holder's own fields win over a caller's
    with hold_lease(path, ttl_s=60.0, about={"owner": "x", "expires_at": 0}):
        record = json.loads(path.read_text())
        assert record["owner"] == owner_name() and record["expires_at"] > time.time()


def test_agents_outages_give_the_latest_loss_of_the_queue(tmp_path: Path) -> None:
    assert queue_lost_at(tmp_path) is None  # no leases dir at all
    record_reconnect(tmp_path, 100.0, 105.0)
    assert queue_lost_at(tmp_path) == 100.0
    assert json.loads((agents_dir(tmp_path) / f"{owner_name()}.json").read_text()) == {
        "lost_at": 100.0, "back_at": 105.0}
    record_reconnect(tmp_path, 200.0, 230.0)  # the same agent again: replaces its record
    assert queue_lost_at(tmp_path) == 200.0
    assert len(list(agents_dir(tmp_path).iterdir())) == 1  # no temp file left
    (agents_dir(tmp_path) / "other:1.json").write_text(json.dumps({"lost_at": 150.0}))
    assert queue_lost_at(tmp_path) == 200.0  # the latest of all agents
    (agents_dir(tmp_path) / "other:2.json").write_text(json.dumps({"lost_at": 300.0}))
    assert queue_lost_at(tmp_path) == 300.0
    (agents_dir(tmp_path) / "other:3.json").write_text('{"lost_a')  # being written
    assert queue_lost_at(tmp_path) == 300.0
