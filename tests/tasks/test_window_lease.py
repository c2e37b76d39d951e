"""Window leases (tasks/window_lease.py): alive while renewed, presumed dead once lapsed."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

from tasks.window_lease import (agents_dir, hold_lease, lease_expired, lease_path, owner_name,
                                queue_lost_at, record_reconnect)


def test_a_held_lease_is_renewed_and_dropped(tmp_path: Path) -> None:
    path = lease_path(tmp_path, "k1")
    with hold_lease(path, ttl_s=0.6):
        first = json.loads(path.read_text())["expires_at"]
        time.sleep(0.5)  # past ttl/3: renewed at least once
        assert json.loads(path.read_text())["expires_at"] > first
        assert lease_expired(path, running_since=time.time() - 100, ttl_s=0.6) is None
    assert not path.exists()


def test_a_lapsed_or_missing_lease_means_a_dead_agent(tmp_path: Path) -> None:
    path = lease_path(tmp_path, "k2")
    path.parent.mkdir(parents=True)
    now = time.time()
    path.write_text(json.dumps({"owner": "host:123", "expires_at": now - 5}))
    assert "host:123" in (lease_expired(path, now - 60, 30.0, now=now) or "")
    path.unlink()
    # no lease yet: give a starting agent ttl to write one
    assert lease_expired(path, now - 10, 30.0, now=now) is None
    assert "without a lease" in (lease_expired(path, now - 31, 30.0, now=now) or "")
    assert lease_expired(path, None, 30.0, now=now) is None


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


def test_the_expiry_rule_at_its_edges(tmp_path: Path) -> None:
    path = lease_path(tmp_path, "k5")
    path.parent.mkdir(parents=True)
    now = 1000.0  # an explicit clock, far from the real one
    assert lease_expired(path, running_since=970.0, ttl_s=30.0, now=now) is None  # exactly ttl
    assert lease_expired(path, running_since=969.0, ttl_s=30.0, now=now) == "running for 31 s without a lease"
    path.write_text(json.dumps({"owner": "h:1", "expires_at": now}))
    assert lease_expired(path, 0.0, 30.0, now=now) is None  # expires at now: not yet lapsed
    path.write_text(json.dumps({"owner": "h:1", "expires_at": now - 2}))
    assert lease_expired(path, 0.0, 30.0, now=now) == "lease of h:1 expired 2 s ago"
    path.write_text(json.dumps({"owner": "h:1", "expires_at": now + 2}))
    assert lease_expired(path, 0.0, 30.0, now=now) is None
    path.write_text('{"owner": "h:1", "expi')  # half a record: read again at the next poll
    assert lease_expired(path, 0.0, 30.0, now=now) is None


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
