"""The dashboard: ``create_app`` wires the shared state to the routers.

- ``pages``       server-rendered pages (overview, assets, one asset, failures);
- ``api``         the read-only JSON API behind them;
- ``media``       stems, spectrograms, mixes and outputs by row id (``containment`` decides
                  what may be served: recorded files inside their roots, symlinks resolved);
- ``actions``     regenerate / delete one track (token + CSRF, ``security``), run as ``jobs``;
- ``queries``     the read models; ``chart`` the inline SVG; ``state`` what routes share.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy.orm import sessionmaker

from flows.dashboard import actions, api, media, pages
from flows.dashboard.containment import OutputRoots
from flows.dashboard.state import HERE, Dashboard
from tasks.database import engine_for_url


def _regenerate_flow() -> tuple[Any, Any]:
    """The flow that write actions run on job threads (and its value checker), and everything
    it imports, imported now on the starting thread: two jobs importing torch/diffusers at once
    on their own threads could get a partially initialised module (tasks/warm_imports.py, issue
    #21). Imported here, not at the top, so a read-only dashboard starts without torch."""
    # imported on use so a read-only dashboard starts without torch (see the docstring)
    from flows.regenerate import regenerate_track
    from tasks.regenerate_track import check_take  # (same reason)
    from tasks.warm_imports import import_pipeline_modules  # (same reason)

    import_pipeline_modules()
    return regenerate_track, check_take


def create_app(db_url: str, data_dir: Path, token: str | None,
               settings: dict[str, Any] | None = None) -> FastAPI:
    """Build the dashboard. Write actions are refused unless ``token`` is given.

    ``settings`` (Settings.to_json()) is what page-started regenerations run with; by default
    the data dir and DB of this dashboard, so the flow writes where the dashboard reads.
    """
    data_dir = Path(data_dir)
    flow, check_take = _regenerate_flow() if token is not None else (None, None)
    flow_settings = dict(settings or {"data_dir": str(data_dir), "database_url": db_url})
    # One engine per URL per process, shared with the flows this dashboard runs in-process.
    engine = engine_for_url(db_url, float(flow_settings.get("db_reconnect_s") or 0.0))
    state = Dashboard(
        sessions=sessionmaker(engine), data_dir=data_dir, token=token, flow_settings=flow_settings,
        output_roots=OutputRoots(data_dir), regenerate_flow=flow, check_take=check_take)
    app = FastAPI(title="stepfoley dashboard", docs_url=None, redoc_url=None)
    app.state.dashboard = state
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    for module in (api, media, actions, pages):
        app.include_router(module.router)
    return app
