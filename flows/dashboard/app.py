"""Dashboard app factory: server-rendered pages, the JSON API behind them, media by id, and
the review loop's write actions (regenerate / delete one track).

Media are looked up by row id only; the stored URI is resolved and must stay inside the data
dir, so a client can never name a file (no traversal, no symlink escape).
"""
from __future__ import annotations

import hmac
import os
import secrets
import threading
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import select, text
from sqlalchemy.orm import sessionmaker

from sql import repository as repo
from sql.schema import Asset, Mix, Output, Run, Scene, Track
from sql.session import make_engine

MAX_PAGE = 200
MAX_PAGE_NO = 100_000
CSRF_COOKIE = "sf_session"
HERE = Path(__file__).parent


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


def throughput_svg(rows: list[dict[str, Any]], width: int = 640, height: int = 160) -> str:
    """Bar chart of footage hours per day as inline SVG (no JS chart library, no CDN)."""
    rows = sorted(rows, key=lambda r: str(r.get("day")))[-30:]
    if not rows:
        return (f'<svg class="chart" width="{width}" height="40" role="img">'
                '<text x="4" y="24">no finished assets yet</text></svg>')
    vals = [float(r.get("footage_seconds") or 0) / 3600.0 for r in rows]
    top = max(vals) or 1.0
    pad, bw = 30, min((width - 40) / len(rows), 48.0)  # one day must not fill the chart
    parts = [f'<svg class="chart" width="{width}" height="{height}" role="img" '
             f'aria-label="footage hours per day">',
             f'<text x="2" y="12" class="axis">{top:.3g} h</text>']
    for i, (r, v) in enumerate(zip(rows, vals)):
        h = (height - pad - 16) * v / top
        x = 36 + i * bw
        y = height - pad - h
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(bw - 2, 1):.1f}" height="{h:.1f}">'
                     f'<title>{r.get("day")}: {v:.3f} h, {r.get("assets")} assets</title></rect>')
        if len(rows) <= 10 or i % max(len(rows) // 6, 1) == 0:
            parts.append(f'<text x="{x:.1f}" y="{height - 12}" class="axis">{r.get("day")}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _regenerate_flow() -> Any:
    """The flow that write actions run on job threads, and everything it imports, imported
    now on the starting thread: two jobs importing torch/diffusers at once on their own threads
    could get a partially initialised module (tasks/warm_imports.py, issue #21). Imported here,
    not at the top, so a read-only dashboard starts without torch."""
    from flows.regenerate import regenerate_track
    from tasks.warm_imports import import_pipeline_modules

    import_pipeline_modules()
    return regenerate_track


def create_app(db_url: str, data_dir: Path, token: str | None,
               settings: dict[str, Any] | None = None) -> FastAPI:
    """Build the dashboard. Write actions are refused unless ``token`` is given.

    ``settings`` (Settings.to_json()) is what page-started regenerations run with; by default
    the data dir and DB of this dashboard, so the flow writes where the dashboard reads.
    """
    data_dir = Path(data_dir)
    engine = make_engine(db_url)
    Session = sessionmaker(engine)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    app = FastAPI(title="stepfoley dashboard", docs_url=None, redoc_url=None)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    flow_settings = dict(settings or {"data_dir": str(data_dir), "database_url": db_url})
    # Per-process secret: CSRF tokens are HMAC(secret, session id), so no server-side store is
    # needed and a restart invalidates old forms rather than trusting them.
    secret = secrets.token_bytes(32)
    prefect_ui = os.environ.get("PREFECT_UI_URL", "").rstrip("/")
    regenerate_flow = _regenerate_flow() if token is not None else None

    # ------------------------------------------------------------------ security helpers
    def check_token(supplied: str | None) -> None:
        if token is None:
            raise HTTPException(403, "dashboard is read-only (no token configured)")
        if not supplied:
            raise HTTPException(401, "token required")
        if not hmac.compare_digest(supplied.encode(), token.encode()):
            raise HTTPException(403, "bad token")

    def check_origin(request: Request) -> None:
        """Browsers send Origin on POST; a foreign one means a cross-site request."""
        origin = request.headers.get("origin")
        if origin is None:  # non-browser clients (curl, CI) send none; they need the token anyway
            return
        host = request.headers.get("host", "")
        if urlparse(origin).netloc != host:
            raise HTTPException(403, "cross-origin request refused")

    def csrf_for(sid: str) -> str:
        return hmac.new(secret, sid.encode(), "sha256").hexdigest()

    def session_id(request: Request) -> str | None:
        sid = request.cookies.get(CSRF_COOKIE)
        return sid if sid and len(sid) <= 64 else None

    def render(request: Request, name: str, ctx: dict[str, Any]) -> HTMLResponse:
        sid = session_id(request)
        new = sid is None
        sid = sid or secrets.token_urlsafe(24)
        ctx = {"csrf": csrf_for(sid), "writable": token is not None, **ctx}
        resp = templates.TemplateResponse(request, name, ctx)
        if new:
            resp.set_cookie(CSRF_COOKIE, sid, httponly=True, samesite="strict")
        return resp

    # ------------------------------------------------------------------ read models
    def overview() -> dict[str, Any]:
        with Session() as s:
            out: dict[str, Any] = {"counts": repo.status_counts(s)}
            for view in ("v_throughput_daily", "v_generation_seconds_daily"):
                try:
                    out[view] = [dict(r._mapping) for r in s.execute(text(f"SELECT * FROM {view}"))]
                except Exception:  # view missing on a bare create_all schema
                    s.rollback()
                    out[view] = []
            for r in out["v_throughput_daily"]:
                r["footage_hours"] = float(r.get("footage_seconds") or 0) / 3600.0
            out["pending"] = repo.list_assets(s, status="pending", limit=20)
            out["failures"] = failures_with_links(s, limit=10, offset=0)
        return _jsonable(out)

    def failures_with_links(s: Any, limit: int, offset: int) -> list[dict[str, Any]]:
        rows = repo.list_failures(s, limit=limit, offset=offset)
        run_ids = {r["run_id"] for r in rows if r.get("run_id")}
        flow_ids = dict(s.execute(select(Run.id, Run.prefect_flow_run_id)
                                  .where(Run.id.in_(run_ids))).all()) if run_ids else {}
        for r in rows:
            fr = flow_ids.get(r.get("run_id"))
            r["prefect_flow_run_id"] = fr
            r["prefect_url"] = f"{prefect_ui}/runs/flow-run/{fr}" if fr and prefect_ui else None
        return rows

    def parse_since(since: str | None) -> datetime | None:
        if not since:
            return None
        try:
            return datetime.fromisoformat(since)
        except ValueError:
            raise HTTPException(422, "since must be an ISO date") from None

    def assets_page(status: str | None, library: str | None, since: str | None, page: int,
                    per_page: int) -> dict[str, Any]:
        if status and status not in repo.ASSET_STATUSES:
            raise HTTPException(422, f"status must be one of {repo.ASSET_STATUSES}")
        when = parse_since(since)
        with Session() as s:
            total = repo.count_assets(s, status=status, library=library, since=when)
            rows = repo.list_assets(s, status=status, library=library, since=when, limit=per_page,
                                    offset=(page - 1) * per_page)
        pages = max(1, -(-total // per_page))
        return _jsonable({"total": total, "page": page, "per_page": per_page, "pages": pages,
                          "assets": rows})

    def asset(asset_id: int) -> dict[str, Any]:
        with Session() as s:
            d = repo.asset_detail(s, asset_id)
        if d is None:
            raise HTTPException(404, "unknown asset")
        return _jsonable(d)

    def failures(page: int, per_page: int) -> dict[str, Any]:
        with Session() as s:
            rows = failures_with_links(s, limit=per_page, offset=(page - 1) * per_page)
        return _jsonable({"page": page, "per_page": per_page, "failures": rows})

    PageQ = Query(1, ge=1, le=MAX_PAGE_NO)
    PerQ = Query(50, ge=1, le=MAX_PAGE)

    # ------------------------------------------------------------------ JSON API
    @app.get("/api/overview")
    def api_overview() -> dict[str, Any]:
        """Counts, throughput and model-seconds views, pending queue, recent failures."""
        return overview()

    @app.get("/api/assets")
    def api_assets(status: str | None = None, library: str | None = None, since: str | None = None,
                   page: int = PageQ, per_page: int = PerQ) -> dict[str, Any]:
        """Filtered, paginated asset list."""
        return assets_page(status, library, since, page, per_page)

    @app.get("/api/assets/{asset_id}")
    def api_asset(asset_id: int) -> dict[str, Any]:
        """One asset with windows, prompts, every track version, mix, output, failures."""
        return asset(asset_id)

    @app.get("/api/failures")
    def api_failures(page: int = PageQ, per_page: int = PerQ) -> dict[str, Any]:
        """Failures, newest first, with the Prefect flow run when known."""
        return failures(page, per_page)

    # ------------------------------------------------------------------ media (by id only)
    def _media(model: type, row_id: int, column: str) -> FileResponse:
        with Session() as s:
            row = s.get(model, row_id)
            uri = getattr(row, column, None) if row is not None else None
        path = _uri_to_path(uri, data_dir) if uri else None
        if path is None:
            raise HTTPException(404, "no such media")
        return FileResponse(path)  # Starlette FileResponse answers Range requests (206)

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

    # ------------------------------------------------------------------ write actions
    jobs: dict[str, dict[str, Any]] = {}
    jobs_lock = threading.Lock()

    def start_job(track_id: int, prompt: str | None, seed: int | None, beta: float | None,
                  delete: bool) -> dict[str, Any]:
        with Session() as s:
            tr = s.get(Track, track_id)
            sc = s.get(Scene, tr.scene_id) if tr is not None else None
            a = s.get(Asset, sc.asset_id) if sc is not None else None
            if tr is None or sc is None or a is None:
                raise HTTPException(404, "unknown track")
            args = (a.sha256, sc.index, tr.order)
            asset_id = a.id
        with jobs_lock:
            busy = [j for j in jobs.values() if j["asset_id"] == asset_id and j["state"] == "running"]
            if busy:  # two flows re-mixing one asset at once would race on the mix
                raise HTTPException(409, "a job is already running for this asset")
            job = {"id": uuid.uuid4().hex, "track_id": track_id, "asset_id": asset_id,
                   "scene": args[1], "track": args[2], "action": "delete" if delete else "regenerate",
                   "state": "running", "result": None, "error": None}
            jobs[job["id"]] = job

        def work() -> None:
            try:
                res = regenerate_flow(*args, prompt=prompt or None, seed=seed, beta=beta,
                                       delete=delete, settings=dict(flow_settings))
                job["result"] = _jsonable(res)
                job["state"] = "done"
            except Exception as exc:  # surfaced on the page; the flow records a failure row
                job["state"], job["error"] = "failed", f"{type(exc).__name__}: {exc}"

        threading.Thread(target=work, daemon=True, name=f"regen-{job['id'][:8]}").start()
        return dict(job)

    def _opt_int(v: Any) -> int | None:
        try:
            return int(v) if v not in (None, "") else None
        except ValueError:
            raise HTTPException(422, "seed must be an integer") from None

    def _opt_float(v: Any) -> float | None:
        try:
            return float(v) if v not in (None, "") else None
        except ValueError:
            raise HTTPException(422, "beta must be a number") from None

    @app.post("/api/tracks/{track_id}/regenerate")
    async def api_regenerate(track_id: int, request: Request) -> dict[str, Any]:
        """Start regenerate_track (token in X-Stepfoley-Token). JSON body: prompt, seed, beta.

        A custom header cannot be sent cross-origin without a CORS preflight, which this app never
        grants, so header-authenticated calls are CSRF-safe; Origin is checked as well.
        """
        check_origin(request)
        check_token(request.headers.get("x-stepfoley-token"))
        body: dict[str, Any] = {}
        if request.headers.get("content-type", "").startswith("application/json"):
            body = await request.json() or {}
            if not isinstance(body, dict):
                raise HTTPException(422, "body must be an object")
        return start_job(track_id, body.get("prompt"), _opt_int(body.get("seed")),
                         _opt_float(body.get("beta")), bool(body.get("delete")))

    @app.post("/api/tracks/{track_id}/delete")
    def api_delete(track_id: int, request: Request) -> dict[str, Any]:
        """Remove the track from the mix (kept in history); re-mix and re-mux."""
        check_origin(request)
        check_token(request.headers.get("x-stepfoley-token"))
        return start_job(track_id, None, None, None, True)

    async def read_form(request: Request) -> dict[str, str]:
        """URL-encoded form body (python-multipart is not a dependency; our forms are small)."""
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return {}
        body = await request.body()
        if len(body) > 64 * 1024:
            raise HTTPException(413, "form too large")
        return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}

    @app.post("/tracks/{track_id}/{action}")
    async def form_action(track_id: int, action: str, request: Request) -> Response:
        """The page's forms: token (field or header) + per-session CSRF token + Origin check."""
        if action not in ("regenerate", "delete"):
            raise HTTPException(404, "unknown action")
        check_origin(request)
        form = await read_form(request)
        sid = session_id(request)
        supplied = str(form.get("csrf") or "")
        if sid is None or not hmac.compare_digest(supplied.encode(), csrf_for(sid).encode()):
            raise HTTPException(403, "CSRF check failed")
        check_token(request.headers.get("x-stepfoley-token") or str(form.get("token") or ""))
        job = start_job(track_id, str(form.get("prompt") or "") or None,
                        _opt_int(form.get("seed")), _opt_float(form.get("beta")),
                        action == "delete")
        return RedirectResponse(f"/assets/{job['asset_id']}?job={job['id']}", status_code=303)

    @app.get("/api/jobs")
    def api_jobs(asset_id: int | None = None) -> list[dict[str, Any]]:
        """Regeneration jobs started by this process (optionally for one asset)."""
        return [dict(j) for j in jobs.values() if asset_id is None or j["asset_id"] == asset_id]

    @app.get("/api/jobs/{job_id}")
    def api_job(job_id: str) -> dict[str, Any]:
        if job_id not in jobs:
            raise HTTPException(404, "no job")
        return dict(jobs[job_id])

    # ------------------------------------------------------------------ pages
    @app.get("/", response_class=HTMLResponse)
    def page_overview(request: Request) -> HTMLResponse:
        o = overview()
        return render(request, "overview.html", {"o": o, "chart": throughput_svg(o["v_throughput_daily"])})

    @app.get("/assets", response_class=HTMLResponse)
    def page_assets(request: Request, status: str | None = None, library: str | None = None,
                    since: str | None = None, page: int = PageQ, per_page: int = PerQ) -> HTMLResponse:
        d = assets_page(status or None, library or None, since or None, page, per_page)
        return render(request, "assets.html", {"d": d, "status": status or "", "library": library or "",
                                               "since": since or "", "statuses": repo.ASSET_STATUSES})

    @app.get("/assets/{asset_id}", response_class=HTMLResponse)
    def page_asset(request: Request, asset_id: int) -> HTMLResponse:
        a = asset(asset_id)
        shots: dict[int, list[dict[str, Any]]] = {}
        for w in a["windows"]:
            shots.setdefault(w["index"], []).append(w)
        js = [dict(j) for j in jobs.values() if j["asset_id"] == asset_id]
        return render(request, "asset.html", {"a": a, "shots": shots, "jobs": js})

    @app.get("/failures", response_class=HTMLResponse)
    def page_failures(request: Request, page: int = PageQ, per_page: int = PerQ) -> HTMLResponse:
        return render(request, "failures.html", {"d": failures(page, per_page)})

    return app
