"""The dashboard's read models: what the pages and the JSON API show, straight from the
provenance database (plain dicts, JSON-ready)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import HTTPException, Query
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from flows.dashboard.state import Dashboard
from sql import repository as repo
from sql.schema import Run

MAX_PAGE = 200
MAX_PAGE_NO = 100_000
PageQ = Query(1, ge=1, le=MAX_PAGE_NO)
PerQ = Query(50, ge=1, le=MAX_PAGE)
VIEWS = ("v_throughput_daily", "v_generation_seconds_daily")


def jsonable(obj: Any) -> Any:
    """Datetimes and other scalars to JSON-friendly values (recursively)."""
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    return obj


def overview(d: Dashboard) -> dict[str, Any]:
    """Counts, the daily views, the pending queue and the latest failures."""
    with d.sessions() as s:
        out: dict[str, Any] = {"counts": repo.status_counts(s)}
        for view in VIEWS:
            try:
                out[view] = [dict(r._mapping) for r in s.execute(text(f"SELECT * FROM {view}"))]
            except Exception:  # view missing on a bare create_all schema
                s.rollback()
                out[view] = []
        for r in out["v_throughput_daily"]:
            r["footage_hours"] = float(r.get("footage_seconds") or 0) / 3600.0
        out["pending"] = repo.list_assets(s, status="pending", limit=20)
        out["failures"] = failures_with_links(d, s, limit=10, offset=0)
    return jsonable(out)


def failures_with_links(d: Dashboard, s: Session, limit: int, offset: int) -> list[dict[str, Any]]:
    """Failures, newest first, each with its Prefect flow run (and UI link when configured)."""
    rows = repo.list_failures(s, limit=limit, offset=offset)
    run_ids = {r["run_id"] for r in rows if r.get("run_id")}
    flow_ids = dict(s.execute(select(Run.id, Run.prefect_flow_run_id)
                              .where(Run.id.in_(run_ids))).all()) if run_ids else {}
    for r in rows:
        fr = flow_ids.get(r.get("run_id"))
        r["prefect_flow_run_id"] = fr
        r["prefect_url"] = f"{d.prefect_ui}/runs/flow-run/{fr}" if fr and d.prefect_ui else None
    return rows


def parse_since(since: str | None) -> datetime | None:
    if not since:
        return None
    try:
        return datetime.fromisoformat(since)
    except ValueError:
        raise HTTPException(422, "since must be an ISO date") from None


def assets_page(d: Dashboard, status: str | None, library: str | None, since: str | None,
                page: int, per_page: int) -> dict[str, Any]:
    if status and status not in repo.ASSET_STATUSES:
        raise HTTPException(422, f"status must be one of {repo.ASSET_STATUSES}")
    when = parse_since(since)
    with d.sessions() as s:
        total = repo.count_assets(s, status=status, library=library, since=when)
        rows = repo.list_assets(s, status=status, library=library, since=when, limit=per_page,
                                offset=(page - 1) * per_page)
    pages = max(1, -(-total // per_page))
    return jsonable({"total": total, "page": page, "per_page": per_page, "pages": pages,
                     "assets": rows})


def asset(d: Dashboard, asset_id: int) -> dict[str, Any]:
    with d.sessions() as s:
        detail = repo.asset_detail(s, asset_id)
    if detail is None:
        raise HTTPException(404, "unknown asset")
    return jsonable(detail)


def failures(d: Dashboard, page: int, per_page: int) -> dict[str, Any]:
    with d.sessions() as s:
        rows = failures_with_links(d, s, limit=per_page, offset=(page - 1) * per_page)
    return jsonable({"page": page, "per_page": per_page, "failures": rows})
