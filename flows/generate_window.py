"""The GPU unit: one window's tracks (or a batch of windows'), in order, with Negative Audio
Guidance.

Where a window runs is the worker's setting ``STEPFOLEY_GPU_DEPLOYMENT``:

  (unset)    in this process, as a task of the calling flow (the embedded run);
  ``agents`` on the warm GPU agents (flows/gpu_agent.py): every window of the asset is
             deferred at once (``gpu_window_task.delay``), in batches of up to
             ``STEPFOLEY_GPU_BATCH`` windows whose track k an agent integrates together
             (``window_batches``), so batches of all the assets in progress queue together
             and the agents take them as they free up; this flow waits for its own batches
             and goes on to mix the moment the last one is done;
  NAME       a ``generate-window`` flow run per window on deployment NAME (a process worker
             starts a new Python per window and reloads the model: 9.6x slower than the
             embedded run on the demo bundle; kept for pools that must run flows).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
from prefect import flow, get_client
from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterId
from prefect.states import Crashed

from tasks import asset_stages, runs
from tasks.config import settings_from_json
from tasks.gpu_agent import batch_label
from tasks.prefect_tasks import (
    generate_window_local_task,
    generate_window_task,
    generate_windows_local_task,
    gpu_window_task,
)
from tasks.batch_liveness import batch_verdict
from tasks.window_lease import lease_path, lease_record, queue_lost_at

AGENTS = "agents"
# A window's lease outlives its agent's last renewal by this much (tasks/window_lease.py); a
# run whose lease lapsed is dispatched again. Caller-side: the caller hands it to the agent.
LEASE_TTL_S = float(os.environ.get("STEPFOLEY_WINDOW_LEASE_TTL_S", "30"))
# How often the caller re-reads its in-flight windows (states and leases) when no end arrives.
POLL_S = 2.0
# Dispatches of one window (the first + re-dispatches after its agent died) before giving up.
MAX_DISPATCHES = 3
# How long a caller waits out a Prefect API that does not answer (a server restart) before
# its asset fails; what the API's failures raise (refused/reset sockets, 5xx while starting).
API_OUTAGE_S = float(os.environ.get("STEPFOLEY_API_OUTAGE_S", "600"))
API_ERRORS = (httpx.HTTPError, OSError)


class ApiOutage:
    """The Prefect API's outage in progress, as this process has seen it, shared by every
    caller: once it has lasted API_OUTAGE_S, every later call gives up at once instead of each
    waiting out a whole budget of its own. A backfill whose server is gone for good would
    otherwise wait API_OUTAGE_S per asset still to start (measured: a flow-run process of a
    torn-down stack still waiting 36 min later); the first answer from the API ends it."""

    def __init__(self) -> None:
        self._since: float | None = None
        self._lock = threading.Lock()

    def failed(self) -> float:
        """Record a failed call; how long the outage has lasted (s)."""
        with self._lock:
            now = time.monotonic()
            if self._since is None:
                self._since = now
            return now - self._since

    def answered(self) -> None:
        with self._lock:
            self._since = None


OUTAGE = ApiOutage()
T = TypeVar("T")


@flow(name="generate-window", flow_run_name="window {job[scene_index]}.{job[window_index]}",
      log_prints=False)
def generate_window_flow(job: dict[str, Any], settings: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Generate (or resume) the tracks of one window; each track is recorded as it finishes."""
    s = runs.resolve_settings(settings)
    return generate_window_task(job, s)


def dispatch_generation(job: dict[str, Any], settings: dict[str, Any]) -> list[dict[str, Any]]:
    """Run on the GPU deployment when one is configured, in this process otherwise.

    In process, the window is one untagged task of the calling flow, not a ``generate-window``
    subflow: a subflow per window cost ~1.4 s of Prefect bookkeeping on the 2-core box (flow
    run creation, state round trips, the heartbeat thread's join) and the `gpu` tag another
    ~0.4 s (a concurrency-slot request), together a third of the wall time of a 2-minute asset
    (benchmarks/bench_orchestration.py, docs/performance.md)."""
    deployment = settings.get("gpu_deployment")
    if not deployment:
        return generate_window_local_task(job, settings)
    from prefect.deployments import run_deployment

    run = run_deployment(deployment, parameters={"job": job, "settings": settings},
                         timeout=None, as_subflow=True)
    if not run.state or not run.state.is_completed():
        raise RuntimeError(f"GPU run {run.id} for window {job['scene_index']}.{job['window_index']} "
                           f"ended {run.state.name if run.state else 'without a state'}")
    # The database, not Prefect's result storage, carries the tracks across machines.
    return asset_stages.window_tracks(job["window_id"], settings)


def dispatch_windows(jobs: list[dict[str, Any]], settings: dict[str, Any]) -> None:
    """Generate every window of an asset where the settings say (see the module docstring),
    in batches of ``STEPFOLEY_GPU_BATCH`` windows (``window_batches``)."""
    target = settings.get("gpu_deployment")
    size = settings_from_json(settings).batch_size
    if not target:
        for batch in window_batches(jobs, size):
            if len(batch) == 1:  # the unbatched window, with its stage cache, as before
                generate_window_local_task(batch[0], settings)
            else:
                generate_windows_local_task(batch, settings, batch_label(batch))
    elif target == AGENTS:
        wait_for_agents(window_batches(jobs, size), settings)
    else:
        for job in jobs:
            dispatch_generation(job, settings)


def window_batches(jobs: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    """An asset's windows in batches of up to ``size``: in window index order, windows of the
    same length together (the network's sequence lengths must agree to share a forward).

    Deterministic, so a rerun (or a killed agent's batch dispatched again) integrates the same
    windows together: a batched take equals the unbatched one to float tolerance, but its bits
    depend on the batch. A window's guidance kind (CFG for a first track without original
    audio, NAG otherwise) is not known here; windows of both kinds in one batch are integrated
    in two groups (tasks/generate.py)."""
    ordered = sorted(jobs, key=lambda j: (j["scene_index"], j["window_index"]))
    open_batches: dict[float, list[dict[str, Any]]] = {}
    batches: list[list[dict[str, Any]]] = []
    for job in ordered:
        length = round(float(job["end_s"]) - float(job["start_s"]), 6)
        batch = open_batches.get(length)
        if batch is None or len(batch) >= max(1, size):
            batch = open_batches[length] = []
            batches.append(batch)
        batch.append(job)
    return batches


def wait_for_agents(batches: list[list[dict[str, Any]]], settings: dict[str, Any]) -> None:
    """Defer all the batches of windows to the GPU agents, then wait until each has ended.

    A batch whose agent died (a lease of one of its windows lapsed, whatever state the server
    recorded for its run; the verdict is tasks/batch_liveness.py's) is marked Crashed and
    dispatched again as the same windows, up to MAX_DISPATCHES times; a
    batch that fails (its agent cannot load the model: ModelLoadError; one of its windows
    fails: the others are generated, tasks/generate.py) raises with the agent's reason once the
    other batches have ended, so the asset fails with that reason and the backfill goes on with
    the next asset.

    A Prefect server restart: while the API does not answer, this waits (up to API_OUTAGE_S)
    instead of failing the asset; the restarted server's queue of deferred runs is empty, so a
    batch deferred before the outage (seen here, or by an agent: ``queue_lost_at``) that is
    still SCHEDULED and holds no lease is marked Crashed and deferred again (not counted as a
    lost agent). A batch that ran through the outage but whose end the server never heard
    of shows as RUNNING without a lease, and is dispatched again like a dead agent's: the new
    attempt finds its tracks recorded and only reads them back (tasks/generate.py)."""
    data_dir = settings_from_json(settings).data_dir

    def dispatch(jobs: list[dict[str, Any]]) -> dict[str, Any]:
        keys = [uuid.uuid4().hex for _ in jobs]
        future = gpu_window_task.delay(jobs, settings, keys, LEASE_TTL_S, batch_label(jobs))
        return {"jobs": jobs, "future": future, "keys": keys, "at": time.time()}

    def _check_batch(i: int, slots: dict[int, dict[str, Any]], runs: dict[Any, Any],
                     lost: float | None) -> None:
        w = slots[i]
        name = f"window {batch_label(w['jobs'])}"
        run_id = w["future"].task_run_id
        run = runs.get(run_id)
        state = run.state if run else None
        leases = [lease_path(data_dir, k) for k in w["keys"]]
        records = [lease_record(p) for p in leases]  # read once per poll
        now = time.time()
        if any(r is not None for r in records):
            w["lease_seen"], w["lease_gone"] = True, None
        elif w.get("lease_seen") and w.get("lease_gone") is None:
            w["lease_gone"] = now
        verdict = batch_verdict(
            state.type.value if state else None,
            state.timestamp.timestamp() if state and state.timestamp else None,
            records, LEASE_TTL_S, w["at"], lost, now, w.get("lease_gone"))
        if verdict.kind == "alive":
            return
        if verdict.kind == "done":
            del slots[i]
        elif verdict.kind == "failed":
            errors.append(f"{name}: {state.name}: {state.message}")
            del slots[i]
        elif verdict.kind == "requeue":
            slots[i] = dispatch(w["jobs"])  # first: an API error here changes nothing
            _crash(run_id, f"{verdict.why}; deferred again")
        else:  # dead: the agent that had it is gone
            if dispatches[i] >= MAX_DISPATCHES:
                _crash(run_id, f"GPU agent lost: {verdict.why}; given up")
                errors.append(f"{name}: {dispatches[i]} agents lost it ({verdict.why})")
                del slots[i]
                return
            slots[i] = dispatch(w["jobs"])
            dispatches[i] += 1
            for p in leases:
                p.unlink(missing_ok=True)  # the dead agent's
            _crash(run_id, f"GPU agent lost: {verdict.why}; batch dispatched again")

    dispatches = {i: 1 for i in range(len(batches))}
    undispatched = list(range(len(batches)))
    slots: dict[int, dict[str, Any]] = {}
    errors: list[str] = []
    outage_since: float | None = None  # first failed API call of the outage in progress
    seen_outage: float | None = None  # start of the last outage this caller lived through
    while undispatched or slots:
        try:
            while undispatched:  # all at once; an outage here resumes where it stopped
                slots[undispatched[0]] = dispatch(batches[undispatched[0]])
                undispatched.pop(0)
            runs = _read_windows(slots)
            if outage_since is not None:
                seen_outage, outage_since = outage_since, None
            lost = max((t for t in (seen_outage, queue_lost_at(data_dir)) if t is not None),
                       default=None)
            for i in list(slots):
                _check_batch(i, slots, runs, lost)
            OUTAGE.answered()
        except API_ERRORS as exc:
            outage_since = outage_since or time.time()
            if OUTAGE.failed() > API_OUTAGE_S:
                raise RuntimeError(f"Prefect API unreachable for {API_OUTAGE_S:.0f} s: {exc}") from exc
            time.sleep(POLL_S)
    if errors:
        raise RuntimeError("GPU agents failed " + "; ".join(errors))


def api_down() -> bool:
    """Does the Prefect API fail to answer its health check right now?"""
    try:
        with get_client(sync_client=True) as client:
            return client.api_healthcheck() is not None
    except API_ERRORS:
        return True


def through_api_outage(fn: Callable[..., T], *args: Any, is_down: Callable[[], bool] = api_down) -> T:
    """``fn(*args)``, called again while the Prefect API does not answer (up to API_OUTAGE_S
    of one outage, counted across every caller of this process: ``ApiOutage``).

    Prefect client errors (``httpx``) are the API's and waited out; a bare ``OSError`` only
    while the API is down (``is_down``, its health check): otherwise it is the asset's own
    (a mux that cannot create its output directory) and raised at once. The restart of the
    heavy test is 8 s: an httpx error can surface after the server is back, so it is not
    re-checked against the health check (that raced, and failed 2 of 20 assets).

    For starting an asset's subflow (flows/backfill.py): its flow run is created through the
    API by a client that has not connected yet, and Prefect retries a refused connection only
    on a client that has, so during a server restart the call failed at once and the asset was
    left pending (measured: benchmarks/bench_agent_faults.py, 1 of 200). Calling it again is
    safe: process_asset resumes from what is recorded (natural keys, upserts). Defined here,
    in an importable module, not in the flow script: a deferred window pickles its caller's
    task context, and a function of a script module would be pickled by a reference the agent
    cannot import."""
    while True:
        try:
            out = fn(*args)
        except API_ERRORS as exc:
            # httpx's errors here are the API's; a bare OSError may be the asset's own, and
            # is waited out only while the API is really down (checked after the fact, so
            # an httpx error is not re-checked: the server may be back by then)
            if not isinstance(exc, httpx.HTTPError) and not is_down():
                raise
            if OUTAGE.failed() > API_OUTAGE_S:
                raise
            time.sleep(POLL_S)
        else:
            OUTAGE.answered()
            return out


def _read_windows(slots: dict[int, dict[str, Any]]) -> dict[Any, Any]:
    """Wait (event-driven) on the oldest batch, then read all in-flight batches' task runs."""
    # an agent takes batches in order: the oldest is the next to end
    slots[min(slots)]["future"].wait(timeout=POLL_S)
    with get_client(sync_client=True) as client:
        ids = [w["future"].task_run_id for w in slots.values()]
        return {r.id: r for r in client.read_task_runs(
            task_run_filter=TaskRunFilter(id=TaskRunFilterId(any_=ids)))}


def _crash(task_run_id: Any, message: str) -> None:
    """Mark a dispatch this caller gave up on Crashed (best effort: its window is already
    dispatched again, and an agent skips a delivered run that is final, tasks/agent_worker.py)."""
    try:
        with get_client(sync_client=True) as client:
            client.set_task_run_state(task_run_id, Crashed(message=message), force=True)
    except API_ERRORS:
        pass
