"""Asset claims: a lease with expiry, taken by one conditional UPDATE.

    UPDATE asset SET claimed_by = :owner, claim_expires_at = now + ttl
    WHERE id = :id AND status != 'done'
      AND (claimed_by IS NULL OR claim_expires_at < now OR claimed_by = :owner)

The database serialises concurrent UPDATEs of one row (row lock on PostgreSQL, the write lock
on SQLite), so exactly one caller sees rowcount 1. A crashed owner's lease lapses at expiry.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from sql.schema import Asset, utcnow


def claim_asset(session: Session, asset_id: int, owner: str, ttl_s: float) -> bool:
    now = utcnow()
    res = session.execute(
        update(Asset)
        .where(Asset.id == asset_id, Asset.status != "done",
               or_(Asset.claimed_by.is_(None), Asset.claim_expires_at < now,
                   Asset.claimed_by == owner))
        .values(claimed_by=owner, claim_expires_at=now + timedelta(seconds=ttl_s))
        .execution_options(synchronize_session=False))
    session.flush()
    return res.rowcount == 1


def steal_claim(session: Session, asset_id: int, holder: str, owner: str, ttl_s: float) -> bool:
    """Take over a lease from ``holder`` (known dead); fails if anyone else got there first."""
    res = session.execute(
        update(Asset).where(Asset.id == asset_id, Asset.claimed_by == holder, Asset.status != "done")
        .values(claimed_by=owner, claim_expires_at=utcnow() + timedelta(seconds=ttl_s))
        .execution_options(synchronize_session=False))
    return res.rowcount == 1


def renew_claim(session: Session, asset_id: int, owner: str, ttl_s: float) -> bool:
    res = session.execute(
        update(Asset).where(Asset.id == asset_id, Asset.claimed_by == owner)
        .values(claim_expires_at=utcnow() + timedelta(seconds=ttl_s))
        .execution_options(synchronize_session=False))
    return res.rowcount == 1


def release_claim(session: Session, asset_id: int, owner: str) -> None:
    session.execute(
        update(Asset).where(Asset.id == asset_id, Asset.claimed_by == owner)
        .values(claimed_by=None, claim_expires_at=None)
        .execution_options(synchronize_session=False))
