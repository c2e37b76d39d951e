"""The caller's verdict on a deferred batch (tasks/batch_liveness.py): a lapsed lease means a
dead agent whatever state the server recorded; no lease means what the state says, after a
grace; a run that vanished is lost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.batch_liveness import MIN_NO_LEASE_GRACE_S, batch_verdict, no_lease_grace_s
from tasks.window_lease import hold_lease, lease_path, lease_record

NOW = 10_000.0  # an explicit clock, far from the real one
TTL = 4.0


def _lease(tmp_path: Path, key: str, expires_at: float | None) -> Path:
    path = lease_path(tmp_path, key)
    if expires_at is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"owner": f"host:{key}", "expires_at": expires_at}))
    return path


def _verdict(state: str | None, leases: list[Path], since: float | None = NOW - 1,
             at: float = NOW - 1, lost: float | None = None) -> tuple[str, str]:
    v = batch_verdict(state, since, [lease_record(p) for p in leases], TTL, at, lost, NOW)
    return v.kind, v.why


def test_an_expired_lease_is_a_dead_agent_even_while_the_run_is_recorded_scheduled(tmp_path: Path) -> None:
    # the agent died before its PENDING/RUNNING events reached the server: the lease is the truth
    lease = _lease(tmp_path, "a", NOW - 2)
    kind, why = _verdict("SCHEDULED", [lease])
    assert kind == "dead" and "host:a" in why and "expired 2 s ago" in why and "SCHEDULED" in why
    assert _verdict("RUNNING", [lease])[0] == "dead"
    assert _verdict("PENDING", [lease])[0] == "dead"
    assert _verdict(None, [lease], since=None)[0] == "dead"


def test_one_lapsed_lease_of_a_batch_is_enough(tmp_path: Path) -> None:
    alive, lapsed = _lease(tmp_path, "a", NOW + 3), _lease(tmp_path, "b", NOW - 1)
    assert _verdict("RUNNING", [alive])[0] == "alive"
    assert _verdict("RUNNING", [alive, lapsed])[0] == "dead"
    assert _verdict("RUNNING", [alive, _lease(tmp_path, "c", NOW)])[0] == "alive"  # at now: not yet


def test_final_states_win_over_leases(tmp_path: Path) -> None:
    lapsed = _lease(tmp_path, "a", NOW - 100)
    assert _verdict("COMPLETED", [lapsed])[0] == "done"
    for state in ("FAILED", "CRASHED", "CANCELLED"):
        assert _verdict(state, [lapsed])[0] == "failed"


def test_without_a_lease_a_started_run_gets_a_grace_longer_than_the_ttl(tmp_path: Path) -> None:
    none = _lease(tmp_path, "a", None)
    grace = no_lease_grace_s(TTL)
    assert grace == MIN_NO_LEASE_GRACE_S >= 2 * TTL
    assert no_lease_grace_s(30.0) == 60.0  # a production TTL: twice it
    for state in ("PENDING", "RUNNING"):
        # a fresh agent setting up its first run, well past the TTL: still alive
        assert _verdict(state, [none], since=NOW - 3 * TTL)[0] == "alive"
        assert _verdict(state, [none], since=NOW - grace)[0] == "alive"  # exactly the grace
        kind, why = _verdict(state, [none], since=NOW - grace - 1)
        assert kind == "dead" and f"{state} for {grace + 1:.0f} s without a lease" == why
        assert _verdict(state, [none], since=None)[0] == "alive"  # no timestamp: cannot judge


def test_a_queued_run_waits_unless_the_queue_it_was_in_was_lost(tmp_path: Path) -> None:
    none = _lease(tmp_path, "a", None)
    assert _verdict("SCHEDULED", [none], since=NOW - 10_000, at=NOW - 10_000)[0] == "alive"
    assert _verdict("SCHEDULED", [none], at=NOW - 50, lost=NOW - 60)[0] == "alive"  # deferred after
    kind, why = _verdict("SCHEDULED", [none], at=NOW - 50, lost=NOW - 40)
    assert kind == "requeue" and "queue was lost" in why
    # a lease alive says an agent has it, whatever the server lost
    assert _verdict("SCHEDULED", [_lease(tmp_path, "b", NOW + 2)], at=NOW - 50,
                    lost=NOW - 40)[0] == "alive"


def test_a_vanished_run_is_lost_after_the_grace(tmp_path: Path) -> None:
    none = _lease(tmp_path, "a", None)
    grace = no_lease_grace_s(TTL)
    assert _verdict(None, [none], since=None, at=NOW - grace)[0] == "alive"
    kind, why = _verdict(None, [none], since=None, at=NOW - grace - 5)
    assert kind == "dead" and "task run is gone" in why


def test_an_unreadable_lease_is_read_again_not_judged(tmp_path: Path) -> None:
    path = lease_path(tmp_path, "a")
    path.parent.mkdir(parents=True)
    path.write_text('{"owner": "h:1", "expi')
    assert _verdict("RUNNING", [path], since=NOW - 1000)[0] == "alive"


@pytest.mark.parametrize("state", ["PENDING", "RUNNING", "SCHEDULED"])
def test_a_held_lease_keeps_its_batch_alive(tmp_path: Path, state: str) -> None:
    import time

    path = lease_path(tmp_path, "held")
    with hold_lease(path, ttl_s=60.0):
        v = batch_verdict(state, time.time() - 1000, [lease_record(path)], 60.0, time.time() - 1000,
                          time.time() - 10, time.time())
    assert v.kind == "alive"


def test_a_released_lease_with_no_recorded_end_is_redone_after_the_grace(tmp_path: Path) -> None:
    # the agent finished (its lease removed) but its end event never reached the server
    none = _lease(tmp_path, "a", None)
    grace = no_lease_grace_s(TTL)
    for state in ("SCHEDULED", "PENDING", "RUNNING"):  # (a missing run: its own rule)
        v = batch_verdict(state, None, [lease_record(none)], TTL, NOW - 1000, None, NOW, lease_gone_since=NOW - grace)
        assert v.kind == "alive", state
        v = batch_verdict(state, None, [lease_record(none)], TTL, NOW - 1000, None, NOW,
                          lease_gone_since=NOW - grace - 2)
        assert v.kind == "dead" and "released" in v.why and "never recorded" in v.why, state
    # a recorded end wins
    v = batch_verdict("COMPLETED", None, [lease_record(none)], TTL, NOW - 1000, None, NOW, lease_gone_since=NOW - 500)
    assert v.kind == "done"


def test_the_moment_between_a_released_lease_and_the_recorded_end_is_not_a_death(tmp_path: Path) -> None:
    # a batch that ran for minutes: RUNNING since long before; its agent just dropped the lease
    # and its COMPLETED event is on its way. Not "RUNNING for minutes without a lease".
    none = _lease(tmp_path, "a", None)
    for state in ("RUNNING", "PENDING"):
        v = batch_verdict(state, NOW - 600, [lease_record(none)], TTL, NOW - 600, None, NOW, lease_gone_since=NOW - 1)
        assert v.kind == "alive", state
    # a vanished run whose lease was seen: the same grace from the release, not from the dispatch
    v = batch_verdict(None, None, [lease_record(none)], TTL, NOW - 600, None, NOW, lease_gone_since=NOW - 1)
    assert v.kind == "alive"
