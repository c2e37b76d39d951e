"""The window as a GPU agent serves it: a deferred Prefect task run, model already in memory.

A GPU agent (flows/gpu_agent.py) is one long-lived process per device that loads the bundle
once and serves ``gpu_window_task`` (``serve_window`` declared in tasks/prefect_tasks.py) with
``prefect.task_worker.serve``; a caller dispatches a window with
``gpu_window_task.delay(job, settings, lease_key, lease_ttl_s)`` (flows/generate_window.py). Each window is a
task run in the caller's flow run (visible in the UI, retried by the task's policy, its result
cached like the embedded window's), executed in the agent's process where ``load_bundle``'s
per-process cache keeps the pipeline warm.

Per window the agent (1) gets the bundle, failing with :class:`ModelLoadError` (a clear,
non-retried reason) when it cannot be loaded, (2) removes the temp files a killed earlier
attempt left for this window, (3) generates under a lease (tasks/window_lease.py) that tells
the caller it is alive, (4) logs one timing line (``stepfoley-window-timing {json}``).
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from tasks.config import Settings, settings_from_json
from tasks.generate import RESULT_FIELDS, generate_window, load_bundle
from tasks.window_lease import hold_lease, lease_path


class ModelLoadError(RuntimeError):
    """The agent cannot load the bundle a window asks for (missing, corrupt, incompatible).
    Not transient: retrying on the same agent loads the same broken files."""


def agent_bundle(settings: Settings) -> Any:
    """The window's bundle from this process's cache (loaded on first use)."""
    try:
        return load_bundle(str(settings.bundle), settings.device, settings.threads)
    except Exception as exc:
        reason = " ".join(str(exc).split())[:500] or type(exc).__name__
        raise ModelLoadError(
            f"GPU agent {socket.gethostname()}:{os.getpid()} could not load model bundle "
            f"{settings.bundle} on {settings.device}: {type(exc).__name__}: {reason}") from exc


def remove_stale_temp_files(settings: Settings, job: dict[str, Any]) -> int:
    """Temp stems (``.name.pid.tmp``) of this window left by an attempt that was killed.

    Called only once the window is this agent's: the caller re-dispatches a window after its
    previous attempt's lease lapsed, so no live writer owns them."""
    folder = settings.stems_dir / job["asset_sha256"][:16]
    prefix = f".scene{job['scene_index']:03d}_w{job['window_index']:02d}_"
    removed = 0
    for p in folder.glob(prefix + "*.tmp") if folder.is_dir() else ():
        p.unlink(missing_ok=True)
        removed += 1
    return removed


def serve_window(job: dict[str, Any], settings: dict[str, Any], lease_key: str,
                 lease_ttl_s: float) -> list[dict[str, Any]]:
    """Generate (or resume) one window's tracks on this agent; returns their track refs.

    ``lease_key`` names this dispatch's lease (the caller chose it and watches it)."""
    t0 = time.perf_counter()
    s = settings_from_json(settings)
    agent_bundle(s)
    remove_stale_temp_files(s, job)
    about = {"window_id": job["window_id"], "asset_sha256": job["asset_sha256"],
             "window": f"{job['scene_index']}.{job['window_index']}"}
    with hold_lease(lease_path(s.data_dir, lease_key), lease_ttl_s, about):
        g0 = time.perf_counter()
        rows = generate_window(job, s)
        generate_s = time.perf_counter() - g0
    print("stepfoley-window-timing " + json.dumps({
        "lease_key": lease_key, "window_id": job["window_id"], "generate_s": round(generate_s, 4),
        "in_task_s": round(time.perf_counter() - t0, 4), "end": time.time()}), flush=True)
    return [{k: row.get(k) for k in RESULT_FIELDS} for row in rows]


def agent_ready_line(bundle: str | Path, device: str) -> str:
    return f"stepfoley-agent-ready {socket.gethostname()}:{os.getpid()} bundle={bundle} device={device}"
