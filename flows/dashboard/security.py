"""Who may write: the token (constant-time compare), the Origin check and per-session CSRF
tokens for the page's forms.

A custom header cannot be sent cross-origin without a CORS preflight, which this app never
grants, so header-authenticated JSON calls are CSRF-safe; forms carry an HMAC of a per-process
secret and the ``sf_session`` cookie (HttpOnly, SameSite=Strict); any Origin must match the host.
"""
from __future__ import annotations

import hmac
from urllib.parse import urlparse

from fastapi import Depends, HTTPException, Request

from flows.dashboard.state import Dashboard, dashboard

CSRF_COOKIE = "sf_session"
TOKEN_HEADER = "x-stepfoley-token"


def check_token(d: Dashboard, supplied: str | None) -> None:
    if d.token is None:
        raise HTTPException(403, "dashboard is read-only (no token configured)")
    if not supplied:
        raise HTTPException(401, "token required")
    if not hmac.compare_digest(supplied.encode(), d.token.encode()):
        raise HTTPException(403, "bad token")


def check_origin(request: Request) -> None:
    """Browsers send Origin on POST; a foreign one means a cross-site request."""
    origin = request.headers.get("origin")
    if origin is None:  # non-browser clients (curl, CI) send none; they need the token anyway
        return
    if urlparse(origin).netloc != request.headers.get("host", ""):
        raise HTTPException(403, "cross-origin request refused")


def csrf_for(d: Dashboard, sid: str) -> str:
    return hmac.new(d.secret, sid.encode(), "sha256").hexdigest()


def session_id(request: Request) -> str | None:
    sid = request.cookies.get(CSRF_COOKIE)
    return sid if sid and len(sid) <= 64 else None


def check_csrf(d: Dashboard, request: Request, supplied: str) -> None:
    sid = session_id(request)
    if sid is None or not hmac.compare_digest(supplied.encode(), csrf_for(d, sid).encode()):
        raise HTTPException(403, "CSRF check failed")


def require_writer(request: Request, d: Dashboard = Depends(dashboard)) -> Dashboard:
    """Dependency of the JSON write routes: same-origin (or no Origin) and the token header."""
    check_origin(request)
    check_token(d, request.headers.get(TOKEN_HEADER))
    return d
