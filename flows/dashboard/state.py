"""What every dashboard route shares, built once by ``create_app`` and reached through the
``dashboard`` dependency (no module-level state: two apps in one process stay apart)."""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from fastapi import Request
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session, sessionmaker

from flows.dashboard.jobs import JobBoard
from flows.dashboard.containment import OutputRoots

HERE = Path(__file__).parent


@dataclass
class Dashboard:
    sessions: sessionmaker[Session]
    data_dir: Path
    token: str | None  # None: read-only
    # What page-started regenerations run with (Settings.to_json()).
    flow_settings: dict[str, Any]
    output_roots: OutputRoots
    # The regenerate flow and its value checker; None on a read-only dashboard (no torch).
    regenerate_flow: Callable[..., Any] | None = None
    check_take: Callable[..., Any] | None = None
    templates: Jinja2Templates = field(
        default_factory=lambda: Jinja2Templates(directory=str(HERE / "templates")))
    # Per-process secret: CSRF tokens are HMAC(secret, session id), so no server-side store is
    # needed and a restart invalidates old forms rather than trusting them.
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    prefect_ui: str = field(default_factory=lambda: os.environ.get("PREFECT_UI_URL", "").rstrip("/"))
    jobs: JobBoard = field(default_factory=JobBoard)

    @property
    def writable(self) -> bool:
        return self.token is not None


def dashboard(request: Request) -> Dashboard:
    """FastAPI dependency: the app's shared state."""
    return request.app.state.dashboard
