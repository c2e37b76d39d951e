"""A warm GPU agent: one long-lived process per device serving windows from memory.

    STEPFOLEY_DEVICE=cuda:0 PREFECT_API_URL=... python -m flows.gpu_agent [--bundle DIR] [--limit 1]

1. loads the bundle once (``STEPFOLEY_BUNDLE`` or --bundle) on ``STEPFOLEY_DEVICE``; a bundle
   that does not load is a one-line reason on stderr and exit code 3, before any work is taken
   (the windows wait for a healthy agent instead of failing here one by one);
2. prints ``stepfoley-agent-ready host:pid ...`` and serves the ``gpu-window`` task
   (tasks/gpu_agent.py, declared in tasks/prefect_tasks.py) with Prefect's task worker
   (tasks/agent_worker.py: one that takes a run off the queue only when it has a free slot, so
   a killed agent never takes a queued window down with it): deferred task runs arrive over
   the server's websocket, ``--limit`` at a time (1 per device: windows are memory-bound),
   each a task run of the flow run that dispatched it and each a batch of up to
   ``STEPFOLEY_GPU_BATCH`` windows of one asset, whose track k the agent integrates together
   (the caller forms the batches: flows/generate_window.py);
3. outlives a restart of the Prefect server: it reconnects (tasks/agent_worker.py) and records
   the outage in the shared data dir, so callers re-defer what the restarted server's empty
   queue forgot (tasks/window_lease.py, flows/generate_window.py);
4. stops on SIGTERM/SIGINT (a window in progress is abandoned; its lease lapses and the caller
   dispatches it again).

Windows asking for another bundle than the preloaded one load it on first use (the process
cache keeps two); one that fails to load fails that window with a ModelLoadError.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial

from tasks.config import ConfigError, apply_offline_defaults, load_settings


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", help="bundle to preload (default: STEPFOLEY_BUNDLE or the shipped one)")
    ap.add_argument("--limit", type=int, default=1,
                    help="batches of windows in progress at once (1 per device)")
    args = ap.parse_args(argv)
    apply_offline_defaults()
    try:
        settings = load_settings({"bundle": args.bundle} if args.bundle else None)
    except ConfigError as exc:
        print(f"stepfoley gpu agent: {exc}", file=sys.stderr)
        return 2

    # After the settings check, so a bad configuration is reported before torch loads.
    from tasks import gpu_agent
    from tasks.agent_worker import serve_slot_first  # (same reason)
    from tasks.prefect_tasks import gpu_window_task  # (same reason)
    from tasks.warm_imports import import_pipeline_modules  # (same reason)
    from tasks.window_lease import record_reconnect  # (same reason)

    import_pipeline_modules()
    try:
        gpu_agent.agent_bundle(settings)
    except gpu_agent.ModelLoadError as exc:
        print(f"stepfoley gpu agent: {exc}", file=sys.stderr, flush=True)
        return 3
    print(gpu_agent.agent_ready_line(settings.bundle, settings.device), flush=True)
    # A lost server connection is recorded in the shared data dir when it comes back, so the
    # callers re-defer the windows a restarted server forgot (tasks/window_lease.py).
    serve_slot_first(gpu_window_task, limit=max(1, args.limit),
                     on_reconnect=partial(record_reconnect, settings.data_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
