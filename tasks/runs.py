"""Runs, claims, failures and progress: the bookkeeping around the media stages.

A claim is a row-level lease in the provenance database (``asset.claimed_by`` +
``asset.claim_expires_at``), taken with one conditional UPDATE, so two backfills (threads,
processes or hosts; SQLite or PostgreSQL) never process the same asset; a crashed owner's
claim simply expires. A heartbeat thread renews the lease while an asset is being processed.

Every bookkeeping call here is one idempotent unit of work, re-run by ``retry_db`` while the
database connection is lost (these run in flow code, outside the tasks' retry policy).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import threading
import traceback
import uuid
from typing import Any, Iterator, Mapping

from sqlalchemy.engine import Engine

from sql import repository
from sql.claims import claim_asset, release_claim, renew_claim, steal_claim
from sql.session import session_scope
from tasks.config import Settings, load_settings, settings_from_json
from tasks.database import migrated_engine
from tasks.policy import retry_db


def resolve_settings(settings: Mapping[str, Any] | Settings | None) -> dict[str, Any]:
    """Settings as the JSON dict flows pass around (env-resolved when none were given)."""
    if isinstance(settings, Settings):
        return settings.to_json()
    return (settings_from_json(settings) if settings else load_settings()).to_json()


def as_settings(settings: Mapping[str, Any] | Settings) -> Settings:
    return settings if isinstance(settings, Settings) else settings_from_json(settings)


def engine_for(settings: Mapping[str, Any] | Settings) -> Engine:
    """The migrated engine of the settings' database (one per URL per process)."""
    return migrated_engine(as_settings(settings))


def session(settings: Mapping[str, Any] | Settings):  # type: ignore[no-untyped-def]
    return session_scope(engine_for(settings))


def current_flow_run_id() -> str | None:
    try:
        from prefect.runtime import flow_run

        return str(flow_run.id) if flow_run.id else None
    except Exception:
        return None


@retry_db
def start_run(kind: str, parameters: dict[str, Any], settings: Mapping[str, Any]) -> int:
    with session(settings) as s:
        return _id(repository.start_run(s, kind=kind,
                                        parameters={**parameters, "settings": dict(settings)},
                                        prefect_flow_run_id=current_flow_run_id()))


@retry_db
def attach_flow_run(run_id: int, settings: Mapping[str, Any]) -> None:
    fr = current_flow_run_id()
    if fr:
        with session(settings) as s:
            repository.set_run_flow_run_id(s, run_id, fr)


@retry_db
def finish_run(run_id: int, results: list[Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for r in results:
        status = r.get("status", "failed") if isinstance(r, dict) else "failed"
        counts[status] = counts.get(status, 0) + 1
    status = "failed" if counts.get("failed") else "completed"
    with session(settings) as s:
        repository.finish_run(s, run_id, counts=counts, status=status)
    return {"run_id": run_id, "counts": counts, "status": status}


def claim_owner(run_id: int) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:run{run_id}:{uuid.uuid4().hex[:8]}"


@retry_db
def claim(asset_id: int, owner: str, settings: Mapping[str, Any]) -> bool:
    """Take the asset's lease; a lease held by a dead process on this host is taken over at once
    (a `kill -9`ed run must not block its own rerun for a whole TTL)."""
    ttl = float(settings.get("claim_ttl_s", 300))
    with session(settings) as s:
        if claim_asset(s, asset_id, owner, ttl):
            return True
        holder = (repository.get_asset(s, asset_id) or {}).get("claimed_by")
        if holder and _dead_local_owner(holder):
            return steal_claim(s, asset_id, holder, owner, ttl)
    return False


def _dead_local_owner(holder: str) -> bool:
    """Owners are "host:pid:run…"; on this host a missing pid means the owner died."""
    parts = holder.split(":")
    if len(parts) < 2 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@retry_db
def release(asset_id: int, owner: str, settings: Mapping[str, Any]) -> None:
    with session(settings) as s:
        release_claim(s, asset_id, owner)


@contextlib.contextmanager
def claim_heartbeat(asset_id: int, owner: str, settings: Mapping[str, Any]) -> Iterator[None]:
    """Renew the lease at a third of its TTL until the block ends."""
    ttl = float(settings.get("claim_ttl_s", 300))
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(ttl / 3):
            try:
                with session(settings) as s:
                    renew_claim(s, asset_id, owner, ttl)
            except Exception:  # a missed beat only shortens the lease; the next one retries
                pass

    t = threading.Thread(target=beat, name=f"claim-{asset_id}", daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join(timeout=5)


@retry_db
def record_failure(settings: Mapping[str, Any], *, uri: str, stage: str, err: BaseException,
                   run_id: int | None = None, asset_id: int | None = None,
                   window_id: int | None = None, track_id: int | None = None) -> None:
    tb = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    digest = hashlib.sha256(tb.encode("utf-8", "replace")).hexdigest()[:16]
    message = " ".join(str(err).split()) or type(err).__name__
    with session(settings) as s:
        repository.record_failure(s, run_id=run_id, asset_id=asset_id, window_id=window_id,
                                  track_id=track_id, uri=uri, stage=getattr(err, "stage", stage),
                                  error_class=type(err).__name__, message=message[:2000],
                                  traceback_digest=digest)


def _id(obj: Any) -> int:
    return int(obj if isinstance(obj, int) else getattr(obj, "id"))
