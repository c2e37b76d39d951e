"""The review loop's write actions: regenerate or delete one track, as JSON API calls (token
header) or as the page's forms (token field + CSRF), run as jobs on background threads.

Every value the client sends is checked before a job starts, with the ranges of the guidance
settings' one home (``tasks.regenerate_track.check_take``): a bad one answers 422 naming the field,
a body that is not JSON 400, and nothing runs.
"""
from __future__ import annotations

import json
from typing import Any, Mapping
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from flows.dashboard.jobs import Busy
from flows.dashboard.queries import jsonable
from flows.dashboard.security import TOKEN_HEADER, check_csrf, check_origin, check_token, require_writer
from flows.dashboard.state import Dashboard, dashboard
from sql.schema import Asset, SceneWindow, Track
from tasks.config import ConfigError, settings_from_json

router = APIRouter()
MAX_BODY = 64 * 1024
BODY_FIELDS = ("prompt", "seed", "beta", "delete")


def checked_take(d: Dashboard, values: Mapping[str, Any]) -> dict[str, Any]:
    """prompt / seed / beta / delete of a request, checked; HTTP 422 naming the field if not."""
    unknown = sorted(str(k) for k in values if k not in BODY_FIELDS)
    if unknown:
        raise HTTPException(422, f"{', '.join(unknown)}: not a field (allowed: {', '.join(BODY_FIELDS)})")
    delete = False if values.get("delete") is None else values["delete"]
    if not isinstance(delete, bool):
        raise HTTPException(422, f"delete must be true or false, got {delete!r}"[:200])
    assert d.check_take is not None  # only a writable dashboard gets here
    try:
        take = d.check_take(settings_from_json(d.flow_settings), prompt=values.get("prompt"),
                            seed=values.get("seed"), beta=values.get("beta"))
    except ConfigError as exc:
        raise HTTPException(422, str(exc)) from None
    return {"prompt": take.prompt, "seed": take.seed, "beta": take.beta, "delete": delete}


async def _body(request: Request, kind: str) -> bytes:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise HTTPException(413, f"{kind} too large")
    return body


async def json_body(request: Request) -> dict[str, Any]:
    """The optional JSON object of a write call (no body: {})."""
    body = await _body(request, "body")
    if not body.strip():
        return {}
    if not request.headers.get("content-type", "").startswith("application/json"):
        raise HTTPException(415, "send the body as application/json")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(400, "body is not valid JSON") from None
    if not isinstance(data, dict):
        raise HTTPException(422, "body must be a JSON object")
    return data


async def read_form(request: Request) -> dict[str, str]:
    """URL-encoded form body (python-multipart is not a dependency; our forms are small)."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {}
    body = await _body(request, "form")
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}


def start_job(d: Dashboard, track_id: int, take: dict[str, Any]) -> dict[str, Any]:
    """Run the regenerate flow for the track's shot and track number on a job thread."""
    with d.sessions() as s:
        tr = s.get(Track, track_id)
        sc = s.get(SceneWindow, tr.window_id) if tr is not None else None
        a = s.get(Asset, sc.asset_id) if sc is not None else None
        if tr is None or sc is None or a is None:
            raise HTTPException(404, "unknown track")
        sha, scene, order, asset_id = a.sha256, sc.shot_index, tr.order, a.id
    flow, settings = d.regenerate_flow, dict(d.flow_settings)
    assert flow is not None  # only a writable dashboard gets here

    def work() -> Any:
        return flow(sha, scene, order, prompt=take["prompt"], seed=take["seed"], beta=take["beta"],
                    delete=take["delete"], settings=settings)

    try:
        return d.jobs.start(track_id=track_id, asset_id=asset_id, scene=scene, track=order,
                            delete=take["delete"], work=work, to_json=jsonable)
    except Busy as exc:
        raise HTTPException(409, str(exc)) from None


@router.post("/api/tracks/{track_id}/regenerate")
async def api_regenerate(track_id: int, request: Request,
                         d: Dashboard = Depends(require_writer)) -> dict[str, Any]:
    """Start regenerate_track (token in X-Stepfoley-Token). JSON body: prompt, seed, beta."""
    return start_job(d, track_id, checked_take(d, await json_body(request)))


@router.post("/api/tracks/{track_id}/delete")
def api_delete(track_id: int, d: Dashboard = Depends(require_writer)) -> dict[str, Any]:
    """Remove the track from the mix (kept in history); re-mix and re-mux."""
    return start_job(d, track_id, {"prompt": None, "seed": None, "beta": None, "delete": True})


@router.post("/tracks/{track_id}/{action}")
async def form_action(track_id: int, action: str, request: Request,
                      d: Dashboard = Depends(dashboard)) -> Response:
    """The page's forms: token (field or header) + per-session CSRF token + Origin check."""
    if action not in ("regenerate", "delete"):
        raise HTTPException(404, "unknown action")
    check_origin(request)
    form = await read_form(request)
    check_csrf(d, request, str(form.get("csrf") or ""))
    check_token(d, request.headers.get(TOKEN_HEADER) or str(form.get("token") or ""))
    values = {k: form[k] for k in ("prompt", "seed", "beta") if form.get(k)}
    take = checked_take(d, {**values, "delete": action == "delete"})
    job = start_job(d, track_id, take)
    return RedirectResponse(f"/assets/{job['asset_id']}?job={job['id']}", status_code=303)


@router.get("/api/jobs")
def api_jobs(asset_id: int | None = None, d: Dashboard = Depends(dashboard)) -> list[dict[str, Any]]:
    """Regeneration jobs started by this process (optionally for one asset)."""
    return d.jobs.list(asset_id)


@router.get("/api/jobs/{job_id}")
def api_job(job_id: str, d: Dashboard = Depends(dashboard)) -> dict[str, Any]:
    job = d.jobs.get(job_id)
    if job is None:
        raise HTTPException(404, "no job")
    return job
