"""Is a deferred batch of windows still somebody's? The caller's verdict on one dispatch.

A caller that deferred a batch to the GPU agents (flows/generate_window.py) sees two things
about it: the task run's state *as the Prefect server recorded it*, and the batch's leases in
the shared data dir (tasks/window_lease.py), written by the agent that runs it. They are not
equally fresh. An agent reports its task run's states as events, sent by a background thread
and recorded by the server asynchronously; an agent killed right after it started a batch
takes its unsent PENDING/RUNNING events with it, and the server records that run as SCHEDULED
for ever, though it was delivered and acknowledged (it is in no queue any more). The lease is
written by the agent itself before any work, so it is the ground truth of "an agent took it".

The verdict, first rule that applies:

1. the run is COMPLETED → ``done``; another final state → ``failed`` (its message says why);
2. a lease of the batch exists: lapsed → ``dead`` (whatever the recorded state); alive →
   ``alive``;
3. no lease any more, but the caller saw one for this dispatch (the agent released it): the
   run's end is on its way → ``alive``, whatever the state says (a batch that ran long is
   RUNNING since long before); still not recorded as ended ``no_lease_grace_s`` after the
   release, its end event was lost (the agent was killed right after the batch, or the server
   restarted) → ``dead``; dispatched again, the batch finds its tracks recorded and only reads
   them back;
4. no lease, SCHEDULED: queued, or waiting to retry → ``alive``; unless the server's queue
   was lost after the dispatch (a restart, ``lost_at``) → ``requeue`` (deferred again, not a
   lost agent);
5. no lease, PENDING or RUNNING for longer than ``no_lease_grace_s`` (the agent died between
   taking the run and writing its lease, or the run went on through a server outage and its
   end was never recorded) → ``dead``; before that → ``alive``;
6. the run is not found at all (an agent deletes a delivered run it cannot submit, e.g. its
   parameters are unreadable: Prefect's ``delete_failed_submissions``), for longer than
   ``no_lease_grace_s`` since the dispatch → ``dead``.

The grace of rules 3, 5 and 6 is not the lease TTL: between a run's PENDING and the first line
of the batch, a fresh agent process sets up its first task run (engine, result store, the caller's
context), which on a loaded 2-core machine takes seconds; a false "dead" costs a dispatch
(MAX_DISPATCHES of them fail the asset), a late one only delays a rare recovery.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# The grace of rules 3, 5 and 6 is at least this, and at least twice the lease TTL.
MIN_NO_LEASE_GRACE_S = 30.0


@dataclass(frozen=True)
class Verdict:
    kind: str  # "done" | "failed" | "alive" | "dead" | "requeue"
    why: str = ""


def no_lease_grace_s(ttl_s: float) -> float:
    return max(2.0 * ttl_s, MIN_NO_LEASE_GRACE_S)


def batch_verdict(state_type: str | None, state_since: float | None,
                  leases: Sequence[Mapping[str, Any] | None], ttl_s: float, dispatched_at: float,
                  lost_at: float | None, now: float,
                  lease_gone_since: float | None = None) -> Verdict:
    """The verdict on one dispatch (see module). ``state_type``: the recorded state's type
    (``"COMPLETED"``, ``"RUNNING"``, ...) or None when the run is not found; ``state_since``:
    when that state began (epoch s); ``leases``: the batch's lease records as read this poll
    (``window_lease.lease_record``: None where there is none); ``lost_at``: the latest loss of
    the server's queue;
    ``lease_gone_since``: when the caller first found gone a lease it had seen for this
    dispatch (None if it never saw one, or sees it now)."""
    if state_type == "COMPLETED":
        return Verdict("done")
    if state_type in ("FAILED", "CRASHED", "CANCELLED"):
        return Verdict("failed")  # the reason is the state's message
    grace = no_lease_grace_s(ttl_s)
    held = [r for r in leases if r is not None]
    if held:
        for r in held:
            if "expires_at" not in r:
                continue  # unreadable right now: read again at the next poll
            expires = float(r["expires_at"])
            if expires < now:
                return Verdict("dead", f"lease of {r.get('owner')} expired {now - expires:.0f} s ago"
                               f" (run recorded {state_type or 'missing'})")
        return Verdict("alive")
    if lease_gone_since is not None:
        if now - lease_gone_since > grace:
            return Verdict("dead", f"its lease was released {now - lease_gone_since:.0f} s ago and"
                           f" the run is still recorded {state_type or 'missing'} (its end was"
                           " never recorded)")
        return Verdict("alive")
    if state_type is None:
        if now - dispatched_at > grace:
            return Verdict("dead", f"its task run is gone ({now - dispatched_at:.0f} s after the"
                           " dispatch; an agent deletes a run it cannot submit: see its log)")
        return Verdict("alive")
    if state_type == "SCHEDULED":
        if lost_at is not None and dispatched_at < lost_at:
            return Verdict("requeue", "the Prefect server's queue was lost (a restart)")
        return Verdict("alive")
    if state_since is not None and now - state_since > grace:
        return Verdict("dead", f"{state_type} for {now - state_since:.0f} s without a lease")
    return Verdict("alive")
