"""Window leases (tasks/window_lease.py): alive while renewed, presumed dead once lapsed."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tasks.window_lease import hold_lease, lease_expired, lease_path


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
