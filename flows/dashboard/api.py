"""The read-only JSON API (``/api/...``): the data behind the pages."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from flows.dashboard import queries
from flows.dashboard.queries import PageQ, PerQ
from flows.dashboard.state import Dashboard, dashboard

router = APIRouter()


@router.get("/api/overview")
def api_overview(d: Dashboard = Depends(dashboard)) -> dict[str, Any]:
    """Counts, throughput and model-seconds views, pending queue, recent failures."""
    return queries.overview(d)


@router.get("/api/assets")
def api_assets(status: str | None = None, library: str | None = None, since: str | None = None,
               page: int = PageQ, per_page: int = PerQ,
               d: Dashboard = Depends(dashboard)) -> dict[str, Any]:
    """Filtered, paginated asset list."""
    return queries.assets_page(d, status, library, since, page, per_page)


@router.get("/api/assets/{asset_id}")
def api_asset(asset_id: int, d: Dashboard = Depends(dashboard)) -> dict[str, Any]:
    """One asset with windows, prompts, every track version, mix, output, failures."""
    return queries.asset(d, asset_id)


@router.get("/api/failures")
def api_failures(page: int = PageQ, per_page: int = PerQ,
                 d: Dashboard = Depends(dashboard)) -> dict[str, Any]:
    """Failures, newest first, with the Prefect flow run when known."""
    return queries.failures(d, page, per_page)
