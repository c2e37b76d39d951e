"""The stat index in the provenance database: ``asset_path`` rows with the file's identity.

Each path row maps a location to its asset (content sha256). Its stat columns (size_bytes,
mtime_ns, inode, device; all NULL when unknown) are the file's identity at the moment its
content was hashed; tasks/stat_index.py decides when a file still has it. A backfill reads the
entries of its whole library in one query (``path_index``) and looks each walked file up in the
dictionary: a done, unchanged file costs a ``stat`` and a lookup, no read, no write but the
batched ``last_seen_at`` touch.
"""

from __future__ import annotations

from typing import Any, Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from sql.schema import Asset, AssetPath, utcnow

_COLUMNS = (AssetPath.id.label("path_id"), AssetPath.uri, AssetPath.asset_id, AssetPath.size_bytes,
            AssetPath.mtime_ns, AssetPath.inode, AssetPath.device, Asset.sha256, Asset.status)
_BATCH = 500  # ids per UPDATE … IN (…): well inside SQLite's and PostgreSQL's parameter limits


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def path_index(session: Session, prefix: str) -> dict[str, dict[str, Any]]:
    """uri → entry (path_id, asset_id, stat columns, the asset's sha256 and status) of every
    path that starts with ``prefix`` (a library's uri), in one query."""
    q = (select(*_COLUMNS).join(Asset, Asset.id == AssetPath.asset_id)
         .where(AssetPath.uri.like(_like_prefix(prefix), escape="\\")))
    return {row["uri"]: dict(row) for row in session.execute(q).mappings()}


def path_entry(session: Session, uri: str) -> dict[str, Any] | None:
    """One path's entry (for a file whose uri does not start with its library's, e.g. a
    percent-encoded name)."""
    row = session.execute(select(*_COLUMNS).join(Asset, Asset.id == AssetPath.asset_id)
                          .where(AssetPath.uri == uri)).mappings().first()
    return dict(row) if row is not None else None


def set_path_stat(session: Session, uri: str, *, size_bytes: int | None, mtime_ns: int | None,
                  inode: int | None, device: int | None) -> None:
    """Record the identity the file at ``uri`` had when it was hashed (its row must exist)."""
    session.execute(update(AssetPath).where(AssetPath.uri == uri).values(
        size_bytes=size_bytes, mtime_ns=mtime_ns, inode=inode, device=device))


def mark_paths_seen(session: Session, path_ids: Sequence[int]) -> None:
    """``last_seen_at`` = now for these path rows (the unchanged files of a walk), batched."""
    now = utcnow()
    ids = list(path_ids)
    for i in range(0, len(ids), _BATCH):
        session.execute(update(AssetPath).where(AssetPath.id.in_(ids[i:i + _BATCH]))
                        .values(last_seen_at=now))
