"""Probe units for benchmarks/bench_distributed.py: the same "window" dispatched three ways.

A probe is what a GPU agent pays per window besides the model's own work: get the bundle (a
process-cached load: free when warm, the whole torch import + bundle load when cold) and
return. Importable by the benchmark (the caller) and by the processes that serve the probes,
so both sides compute the same Prefect task key. ``nonce`` keeps every call a new run
(task workers give uncached tasks Prefect's default input-keyed cache).
"""

from __future__ import annotations

import os
import time
from typing import Any

from prefect import flow, task


def touch_bundle(bundle: str) -> dict[str, Any]:
    """The per-window fixed cost of a GPU unit: the (cached) bundle, nothing else."""
    from tasks.generate import load_bundle

    t0 = time.perf_counter()
    load_bundle(bundle, "cpu", 1)
    return {"pid": os.getpid(), "load_s": time.perf_counter() - t0}


@task(name="probe-window", persist_result=True)
def probe_task(bundle: str, nonce: int = 0) -> dict[str, Any]:
    return touch_bundle(bundle)


@task(name="probe-window-gpu", tags=["gpu"], persist_result=True)
def probe_task_tagged(bundle: str, nonce: int = 0) -> dict[str, Any]:
    return touch_bundle(bundle)


@flow(name="probe-scene", log_prints=False)
def probe_flow(bundle: str, nonce: int = 0) -> dict[str, Any]:
    return probe_task(bundle, nonce)
