"""Dashboard app factory (work in progress: read-only JSON API, pages and media by id).

Media are looked up by row id only; the stored URI is resolved and must stay inside the data
dir, so a client can never name a file (no traversal, no symlink escape).
"""
from __future__ import annotations

import hmac
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from sql import repository as repo
from sql.schema import Mix, Output, Track
from sql.session import make_engine

MAX_PAGE = 200


def _jsonable(obj: Any) -> Any:
    """Datetimes and other scalars to JSON-friendly values (recursively)."""
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    return obj


def _uri_to_path(uri: str, data_dir: Path) -> Path | None:
    """Stored URI → file inside data_dir, or None (relative URIs are relative to data_dir)."""
    if uri.startswith("file://"):
        p = Path(unquote(urlparse(uri).path))
    elif "://" in uri:
        return None
    else:
        p = Path(uri)
    if not p.is_absolute():
        p = data_dir / p
    try:
        real = p.resolve(strict=True)
        root = data_dir.resolve(strict=True)
    except OSError:
        return None
    # Containment after resolving symlinks: a link pointing out of the data dir is refused.
    if not real.is_relative_to(root) or not real.is_file():
        return None
    return real


def create_app(db_url: str, data_dir: Path, token: str | None) -> FastAPI:
    """Build the dashboard; write actions exist only when a token is given."""
    engine = make_engine(db_url)
    Session = sessionmaker(engine)
    templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
    app = FastAPI(title="stepfoley dashboard", docs_url=None, redoc_url=None)

    def check_token(supplied: str | None) -> None:
        if token is None:
            raise HTTPException(403, "dashboard is read-only (no token configured)")
        if not supplied:
            raise HTTPException(401, "token required")
        if not hmac.compare_digest(supplied.encode(), token.encode()):
            raise HTTPException(403, "bad token")

    app.state.check_token = check_token

    def overview() -> dict[str, Any]:
        with Session() as s:
            out: dict[str, Any] = {"counts": repo.status_counts(s)}
            for view in ("v_throughput_daily", "v_generation_seconds_daily"):
                try:
                    out[view] = [dict(r._mapping) for r in s.execute(text(f"SELECT * FROM {view}"))]
                except Exception:  # view missing on a bare create_all schema
                    out[view] = []
            out["pending"] = repo.list_assets(s, status="pending", limit=20)
            out["failures"] = repo.list_failures(s, limit=10)
        return _jsonable(out)

    @app.get("/api/overview")
    def api_overview() -> dict[str, Any]:
        return overview()

    @app.get("/api/assets")
    def api_assets(status: str | None = None, library: str | None = None,
                   page: int = Query(1, ge=1, le=100000),
                   per_page: int = Query(50, ge=1, le=MAX_PAGE)) -> dict[str, Any]:
        with Session() as s:
            rows = repo.list_assets(s, status=status, library=library, limit=per_page,
                                    offset=(page - 1) * per_page)
            total = repo.count_assets(s, status=status, library=library)
        return _jsonable({"total": total, "page": page, "per_page": per_page, "assets": rows})

    @app.get("/api/assets/{asset_id}")
    def api_asset(asset_id: int) -> dict[str, Any]:
        with Session() as s:
            d = repo.asset_detail(s, asset_id)
        if d is None:
            raise HTTPException(404, "unknown asset")
        return _jsonable(d)

    @app.get("/api/failures")
    def api_failures(page: int = Query(1, ge=1, le=100000),
                     per_page: int = Query(50, ge=1, le=MAX_PAGE)) -> dict[str, Any]:
        with Session() as s:
            rows = repo.list_failures(s, limit=per_page, offset=(page - 1) * per_page)
        return _jsonable({"page": page, "per_page": per_page, "failures": rows})

    def _media(model: type, row_id: int, column: str) -> FileResponse:
        with Session() as s:
            row = s.get(model, row_id)
            uri = getattr(row, column, None) if row is not None else None
        path = _uri_to_path(uri, data_dir) if uri else None
        if path is None:
            raise HTTPException(404, "no such media")
        return FileResponse(path)  # Starlette FileResponse answers Range requests

    @app.get("/media/track/{track_id}")
    def media_track(track_id: int) -> FileResponse:
        return _media(Track, track_id, "stem_uri")

    @app.get("/media/track/{track_id}/spectrogram.png")
    def media_spectrogram(track_id: int) -> FileResponse:
        from flows.dashboard.spectrogram import spectrogram_png

        with Session() as s:
            row = s.get(Track, track_id)
            uri, sha = (row.stem_uri, row.stem_sha256) if row is not None else (None, None)
        path = _uri_to_path(uri, data_dir) if uri else None
        if path is None or not sha:
            raise HTTPException(404, "no such media")
        return FileResponse(spectrogram_png(path, data_dir / "spectrograms", sha),
                            media_type="image/png")

    @app.get("/media/mix/{mix_id}")
    def media_mix(mix_id: int) -> FileResponse:
        return _media(Mix, mix_id, "uri")

    @app.get("/media/output/{output_id}")
    def media_output(output_id: int) -> FileResponse:
        return _media(Output, output_id, "uri")

    jobs: dict[int, dict[str, Any]] = {}

    @app.post("/api/tracks/{track_id}/regenerate")
    def api_regenerate(track_id: int, request: Request) -> dict[str, Any]:
        """Start regenerate_track for one track in a background thread (token required).

        Token only in the X-Stepfoley-Token header here: a custom header cannot be sent
        cross-origin without a CORS preflight, which this app never grants, so it is CSRF-safe.
        (Form posts with a per-session CSRF token are still to do.)
        """
        check_token(request.headers.get("x-stepfoley-token"))
        from sql.schema import Asset, Scene

        with Session() as s:
            tr = s.get(Track, track_id)
            sc = s.get(Scene, tr.scene_id) if tr is not None else None
            asset = s.get(Asset, sc.asset_id) if sc is not None else None
            if tr is None or sc is None or asset is None:
                raise HTTPException(404, "unknown track")
            args = (asset.sha256, sc.index, tr.order)
        import threading

        job = {"track_id": track_id, "state": "running", "result": None, "error": None}
        jobs[track_id] = job

        def work() -> None:
            from flows.regenerate import regenerate_track

            try:
                job["result"] = _jsonable(regenerate_track(*args))
                job["state"] = "done"
            except Exception as exc:  # surfaced on the page; the flow records a failure row
                job["state"], job["error"] = "failed", f"{type(exc).__name__}: {exc}"

        threading.Thread(target=work, daemon=True).start()
        return job

    @app.get("/api/jobs/{track_id}")
    def api_job(track_id: int) -> dict[str, Any]:
        if track_id not in jobs:
            raise HTTPException(404, "no job")
        return jobs[track_id]

    @app.get("/", response_class=HTMLResponse)
    def page_overview(request: Request) -> HTMLResponse:
        return templates.TemplateResponse(request, "overview.html", {"o": overview()})

    return app
