"""Extract guidance-training features from a source, shard by shard, on the `gpu` pool."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.futures import wait

from tasks import extract_features as ef
from tasks.warm_imports import import_pipeline_modules

# A shard is GPU work with a process-cached model; a transient failure is retried, a bad clip
# never fails it (it is recorded as skipped).
extract_shard_task = task(name="extract-shard", tags=["gpu"], retries=2, retry_delay_seconds=10)(ef.extract_shard)


@flow(name="extract-features", flow_run_name="extract {source}", log_prints=False)
def extract_features(source: str, out: str, bundle: str, shard_size: int = 64,
                     segment_s: float | None = None, video_dir: str | None = None,
                     device: str = "cpu", threads: int = 1,
                     cache_dir: str | None = None) -> dict[str, Any]:
    """List the source, extract every unfinished shard (in parallel on the task runner), index."""
    # 0. before the task runner's threads start (#21)
    import_pipeline_modules()
    root = Path(out)
    # 1. the clips, in shards, and the run's metadata
    plan = ef.plan_extraction(source, root, bundle, Path(cache_dir or root / "_staged"), shard_size,
                              segment_s, video_dir, device)
    # 2. one task per shard; finished shards return at once
    futures = [extract_shard_task.submit(i, clips, root, plan["meta"], device, threads)
               for i, clips in enumerate(plan["shards"])]
    wait(futures)
    for f in futures:
        f.result()
    # 3. the index over every shard, skips counted by reason
    return ef.finish_extraction(root, plan["meta"], len(plan["shards"]), plan["listing_skips"])
