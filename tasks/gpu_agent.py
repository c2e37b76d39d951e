"""Windows as a GPU agent serves them: a deferred Prefect task run, model already in memory.

A GPU agent (flows/gpu_agent.py) is one long-lived process per device that loads the bundle
once and serves ``gpu_window_task`` (``serve_windows`` declared in tasks/prefect_tasks.py)
with Prefect's task worker; a caller dispatches a batch of up to B windows of one asset with
``gpu_window_task.delay(jobs, settings, lease_keys, lease_ttl_s, label)``
(flows/generate_window.py, which forms the batches). Each batch is a task run in the caller's
flow run (visible in the UI, retried by the task's policy), executed in the agent's process
where ``load_bundle``'s per-process cache keeps the pipeline warm; its windows' track k are
integrated together (tasks/generate.py, ``generate_windows``).

Per batch the agent (1) gets the bundle, failing with :class:`ModelLoadError` (a clear,
non-retried reason) when it cannot be loaded, (2) removes the temp files a killed earlier
attempt left for its windows, (3) generates under one lease per window (tasks/window_lease.py,
renewed together) that tells the caller it is alive, (4) logs one timing line per window
(``stepfoley-window-timing {json}``), (5) fails with every failed window's reason once the
other windows are done.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from tasks.config import Settings, settings_from_json
from tasks.generate import batch_result, generate_windows, load_bundle
from tasks.window_lease import hold_leases, lease_path


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


def batch_label(jobs: list[dict[str, Any]]) -> str:
    """``scene.window`` of each window, ``+``-joined: the task run's name ("window 0.0+0.1")."""
    return "+".join(f"{j['scene_index']}.{j['window_index']}" for j in jobs)


def serve_windows(jobs: list[dict[str, Any]], settings: dict[str, Any], lease_keys: list[str],
                  lease_ttl_s: float, label: str = "") -> list[dict[str, Any]]:
    """Generate (or resume) a batch of windows of one asset on this agent; their track refs.

    ``lease_keys`` name this dispatch's leases, one per window (the caller chose them and
    watches them); ``label`` is only the task run's name (``batch_label``). A window that
    fails does not stop the others: once they are done, the batch raises with every failed
    window's reason (a batch of one raises the window's own error, as before batching)."""
    if len(lease_keys) != len(jobs):
        raise ValueError(f"{len(jobs)} windows but {len(lease_keys)} lease keys")
    t0 = time.perf_counter()
    s = settings_from_json(settings)
    abouts = [{"window_id": j["window_id"], "asset_sha256": j["asset_sha256"],
               "window": f"{j['scene_index']}.{j['window_index']}", "batch": len(jobs)}
              for j in jobs]
    # The leases first: the caller presumes a run dead once it has been RUNNING for the TTL
    # without one, and a bundle this agent has not preloaded (a real network from a slow disk)
    # can take longer than that to load.
    with hold_leases([lease_path(s.data_dir, k) for k in lease_keys], lease_ttl_s, abouts):
        agent_bundle(s)
        for job in jobs:
            remove_stale_temp_files(s, job)
        g0 = time.perf_counter()
        states = generate_windows(jobs, s)
        generate_s = time.perf_counter() - g0
    end = time.time()
    for w, key in zip(states, lease_keys):
        if w.error is not None:
            continue
        # one line per window served (its share of the batch), so counts stay per window
        print("stepfoley-window-timing " + json.dumps({
            "lease_key": key, "window_id": w.job["window_id"], "batch_key": lease_keys[0],
            "batch": len(jobs), "batch_generate_s": round(generate_s, 4),
            "generate_s": round(generate_s / len(jobs), 4),
            "in_task_s": round(time.perf_counter() - t0, 4), "end": end}), flush=True)
    return batch_result(states)


def agent_ready_line(bundle: str | Path, device: str) -> str:
    return f"stepfoley-agent-ready {socket.gethostname()}:{os.getpid()} bundle={bundle} device={device}"
