"""sql/claims.py, each function called directly on a real database (SQLite and PostgreSQL):
who may take, renew, steal and release a lease, on which asset, and until when."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from sql import repository as r
from sql.claims import claim_asset, release_claim, renew_claim, steal_claim
from sql.migrate import upgrade
from sql.schema import utcnow
from sql.session import make_engine, session_scope

TTL = 60.0


@pytest.fixture
def engine(db_url: str):  # type: ignore[no-untyped-def]
    upgrade(db_url)
    return make_engine(db_url)


@pytest.fixture
def assets(engine) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """Two assets, so a statement that forgets its asset id touches the wrong one."""
    with session_scope(engine) as s:
        return tuple(r.upsert_asset(s, sha256=c * 64, uri=f"/{c}.mp4")["id"] for c in "ab")  # type: ignore[return-value]


def _lease(engine, aid: int) -> tuple[str | None, datetime | None]:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        a = r.get_asset(s, aid)
    return a["claimed_by"], a["claim_expires_at"]


def _call(engine, fn, *args):  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        return fn(s, *args)


def _expires_in_ttl(expires: datetime | None, before: datetime, ttl: float = TTL) -> bool:
    after = utcnow()
    assert expires is not None
    return before + timedelta(seconds=ttl) <= expires <= after + timedelta(seconds=ttl)


def test_claim_sets_owner_and_a_future_expiry_on_that_asset_only(engine, assets) -> None:  # type: ignore[no-untyped-def]
    a, b = assets
    before = utcnow()
    assert _call(engine, claim_asset, a, "w1", TTL) is True
    owner, expires = _lease(engine, a)
    assert owner == "w1" and _expires_in_ttl(expires, before)
    assert _lease(engine, b) == (None, None)


def test_a_live_lease_keeps_others_out_but_not_its_owner(engine, assets) -> None:  # type: ignore[no-untyped-def]
    a, _ = assets
    assert _call(engine, claim_asset, a, "w1", TTL)
    assert _call(engine, claim_asset, a, "w2", TTL) is False
    assert _lease(engine, a)[0] == "w1"
    before = utcnow()
    assert _call(engine, claim_asset, a, "w1", 2 * TTL) is True  # re-claim = renew
    assert _expires_in_ttl(_lease(engine, a)[1], before, 2 * TTL)


def test_an_expired_lease_is_taken_and_a_done_asset_never(engine, assets) -> None:  # type: ignore[no-untyped-def]
    a, b = assets
    assert _call(engine, claim_asset, a, "dead", -1)  # a lease that lapsed a second ago
    assert _call(engine, claim_asset, a, "w2", TTL) is True and _lease(engine, a)[0] == "w2"
    _call(engine, r.set_asset_status, b, "done")
    assert _call(engine, claim_asset, b, "w1", TTL) is False and _lease(engine, b) == (None, None)


def test_renew_extends_only_the_owners_lease(engine, assets) -> None:  # type: ignore[no-untyped-def]
    a, b = assets
    assert _call(engine, claim_asset, a, "w1", 5) and _call(engine, claim_asset, b, "w1", 5)
    b_before = _lease(engine, b)
    assert _call(engine, renew_claim, a, "w2", TTL) is False
    before = utcnow()
    assert _call(engine, renew_claim, a, "w1", TTL) is True
    owner, expires = _lease(engine, a)
    assert owner == "w1" and _expires_in_ttl(expires, before)
    assert _lease(engine, b) == b_before


def test_steal_takes_over_from_the_named_holder(engine, assets) -> None:  # type: ignore[no-untyped-def]
    a, b = assets
    assert _call(engine, claim_asset, a, "dead", TTL) and _call(engine, claim_asset, b, "dead", TTL)
    b_before = _lease(engine, b)
    before = utcnow()
    assert _call(engine, steal_claim, a, "dead", "heir", TTL) is True
    owner, expires = _lease(engine, a)
    assert owner == "heir" and _expires_in_ttl(expires, before)
    assert _lease(engine, b) == b_before  # the holder's other lease is not touched


def test_steal_refuses_when_the_holder_changed(engine, assets) -> None:  # type: ignore[no-untyped-def]
    """Two rescuers saw the same dead holder: the second finds the lease already moved on."""
    a, _ = assets
    assert _call(engine, claim_asset, a, "dead", TTL)
    assert _call(engine, steal_claim, a, "dead", "heir1", TTL) is True
    assert _call(engine, steal_claim, a, "dead", "heir2", TTL) is False
    assert _lease(engine, a)[0] == "heir1"


def test_steal_refuses_a_done_asset(engine, assets) -> None:  # type: ignore[no-untyped-def]
    a, _ = assets
    assert _call(engine, claim_asset, a, "dead", TTL)
    _call(engine, r.set_asset_status, a, "done")
    assert _call(engine, steal_claim, a, "dead", "heir", TTL) is False
    assert _lease(engine, a)[0] == "dead"


def test_release_clears_only_the_owners_claim_on_that_asset(engine, assets) -> None:  # type: ignore[no-untyped-def]
    a, b = assets
    assert _call(engine, claim_asset, a, "w1", TTL) and _call(engine, claim_asset, b, "w1", TTL)
    a_before, b_before = _lease(engine, a), _lease(engine, b)
    _call(engine, release_claim, a, "w2")  # not the owner: nothing happens
    assert _lease(engine, a) == a_before
    _call(engine, release_claim, a, "w1")
    assert _lease(engine, a) == (None, None)
    assert _lease(engine, b) == b_before
    assert _call(engine, claim_asset, a, "w2", TTL) is True  # free again at once
