"""The Prefect tasks a backfill runs whatever it finds: discover (first) and report-run (last).

Declared apart from the stages' tasks (tasks/prefect_tasks.py, which re-exports them) because
that module imports every stage and so torch, diffusers and the prompting models: a nightly
backfill over an archive that is all done runs only these two and must not pay for loading
the pipeline (flows/backfill.py, docs/performance.md "The nightly no-op backfill"). Same
pattern and policies as there.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks import policy
from tasks.discovery import discover
from tasks.report import report_run

# Reads the library as it is now: never cached (tasks/stage_cache.py's NOT_CACHED, which is
# not imported for it: that module loads the prompting models' code).
discover_task = task(name="discover", timeout_seconds=policy.LONG_STAGE_S, **policy.CPU_STAGE,
                     cache_policy=NO_CACHE)(discover)
report_run_task = task(name="report-run", **policy.CPU_STAGE)(report_run)
