"""Regeneration jobs started from the dashboard: one background thread per job, at most one
running job per asset (two flows re-mixing one asset at once would race on the mix)."""
from __future__ import annotations

import threading
import uuid
from typing import Any, Callable


class Busy(RuntimeError):
    """A job is already running for this asset."""


class JobBoard:
    """The jobs of this server process, by id (kept in memory: a restart forgets them; the
    database keeps what they produced)."""

    def __init__(self) -> None:
        self._jobs: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def start(self, *, track_id: int, asset_id: int, scene: int, track: int, delete: bool,
              work: Callable[[], Any], to_json: Callable[[Any], Any]) -> dict[str, Any]:
        """Record a running job and run ``work`` on its own thread; returns the job."""
        with self._lock:
            if any(j["asset_id"] == asset_id and j["state"] == "running" for j in self._jobs.values()):
                raise Busy("a job is already running for this asset")
            job = {"id": uuid.uuid4().hex, "track_id": track_id, "asset_id": asset_id,
                   "scene": scene, "track": track, "action": "delete" if delete else "regenerate",
                   "state": "running", "result": None, "error": None}
            self._jobs[job["id"]] = job

        def run() -> None:
            try:
                job["result"] = to_json(work())
                job["state"] = "done"
            except Exception as exc:  # surfaced on the page; the flow records a failure row
                job["state"], job["error"] = "failed", f"{type(exc).__name__}: {exc}"

        threading.Thread(target=run, daemon=True, name=f"regen-{job['id'][:8]}").start()
        return dict(job)

    def get(self, job_id: str) -> dict[str, Any] | None:
        job = self._jobs.get(job_id)
        return dict(job) if job is not None else None

    def list(self, asset_id: int | None = None) -> list[dict[str, Any]]:
        return [dict(j) for j in list(self._jobs.values()) if asset_id is None or j["asset_id"] == asset_id]
