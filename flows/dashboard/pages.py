"""The server-rendered pages (Jinja templates, no external assets). Every page sets the
session cookie its forms' CSRF tokens are bound to."""
from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from flows.dashboard import queries
from flows.dashboard.chart import throughput_svg
from flows.dashboard.queries import PageQ, PerQ
from flows.dashboard.security import CSRF_COOKIE, csrf_for, session_id
from flows.dashboard.state import Dashboard, dashboard
from sql import repository as repo

router = APIRouter()


def render(d: Dashboard, request: Request, name: str, ctx: dict[str, Any]) -> HTMLResponse:
    sid = session_id(request)
    new = sid is None
    sid = sid or secrets.token_urlsafe(24)
    resp = d.templates.TemplateResponse(request, name, {"csrf": csrf_for(d, sid),
                                                        "writable": d.writable, **ctx})
    if new:
        resp.set_cookie(CSRF_COOKIE, sid, httponly=True, samesite="strict")
    return resp


@router.get("/", response_class=HTMLResponse)
def page_overview(request: Request, d: Dashboard = Depends(dashboard)) -> HTMLResponse:
    o = queries.overview(d)
    return render(d, request, "overview.html", {"o": o, "chart": throughput_svg(o["v_throughput_daily"])})


@router.get("/assets", response_class=HTMLResponse)
def page_assets(request: Request, status: str | None = None, library: str | None = None,
                since: str | None = None, page: int = PageQ, per_page: int = PerQ,
                d: Dashboard = Depends(dashboard)) -> HTMLResponse:
    data = queries.assets_page(d, status or None, library or None, since or None, page, per_page)
    return render(d, request, "assets.html", {"d": data, "status": status or "", "library": library or "",
                                              "since": since or "", "statuses": repo.ASSET_STATUSES})


@router.get("/assets/{asset_id}", response_class=HTMLResponse)
def page_asset(request: Request, asset_id: int, d: Dashboard = Depends(dashboard)) -> HTMLResponse:
    a = queries.asset(d, asset_id)
    shots: dict[int, list[dict[str, Any]]] = {}
    for w in a["windows"]:
        shots.setdefault(w["shot_index"], []).append(w)
    return render(d, request, "asset.html", {"a": a, "shots": shots, "jobs": d.jobs.list(asset_id)})


@router.get("/failures", response_class=HTMLResponse)
def page_failures(request: Request, page: int = PageQ, per_page: int = PerQ,
                  d: Dashboard = Depends(dashboard)) -> HTMLResponse:
    return render(d, request, "failures.html", {"d": queries.failures(d, page, per_page)})
