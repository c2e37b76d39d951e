"""`stepfoley extract-features`: guidance-training features from real footage (issue #17)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import click

from flows.cli_common import cli_settings
from tasks.warm_imports import import_pipeline_modules

CTX = {"help_option_names": ["-h", "--help"]}


def register(cli: click.Group) -> None:
    @cli.command("extract-features", context_settings=CTX)
    @click.argument("source")
    @click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
                  help="Directory for the shards and their index (resumable: rerun to continue).")
    @click.option("--bundle", type=click.Path(file_okay=False, path_type=Path),
                  help="The bundle whose codec and video features encode the clips (default: the shipped one).")
    @click.option("--shard-size", type=click.IntRange(1, 100_000), default=64, show_default=True,
                  help="Clips per shard (one Prefect task each).")
    @click.option("--segment", "segment_s", type=click.FloatRange(0.5, 60.0),
                  help="Segment length in seconds (default: half the bundle's window, 4 s).")
    @click.option("--video-dir", help="Where a headerless VGGSound CSV's clips are (default: beside it).")
    @click.pass_context
    def extract_features_cmd(ctx: click.Context, source: str, out_dir: Path, bundle: Path | None,
                             shard_size: int, segment_s: float | None, video_dir: str | None) -> None:
        """Encode every clip of SOURCE (a folder, an fsspec URI, or a CSV/TSV listing such as
        VGGSound's) into target/condition segment features for `stepfoley train guidance`."""
        # CLI start-up: the flow and its torch stack load only for this command.
        from flows.extract_features import extract_features
        from flows.prefect_api import local_run_settings, start_local_api  # CLI start-up, as above

        settings = cli_settings(ctx, **({"bundle": bundle} if bundle else {}))
        api = start_local_api()
        import_pipeline_modules()
        if api is not None:
            api.start()
        done = threading.Event()
        bar = threading.Thread(target=_progress, args=(done, out_dir), daemon=True)
        bar.start()
        try:
            with local_run_settings(api):
                index = extract_features(source, str(out_dir), str(settings.bundle), shard_size,
                                         segment_s, video_dir, settings.device, settings.threads,
                                         str(settings.data_dir / "cache" / "extract"))
        finally:
            done.set()
            bar.join(timeout=5)
        click.echo(json.dumps({k: index[k] for k in ("num_shards", "num_clips", "skipped", "segment_s",
                                                        "bundle_id")}, indent=1))


def _progress(done: threading.Event, out_dir: Path) -> None:
    """Shards finished so far, from the manifests on disk (the flow writes them atomically)."""
    import sys

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    if not sys.stderr.isatty():
        done.wait()
        return
    with Progress(TextColumn("shards"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()) as p:
        t = p.add_task("shards", total=None)
        while not done.wait(0.5):
            plan = out_dir / "plan.json"
            if plan.is_file():
                total = json.loads(plan.read_text()).get("num_shards")
                p.update(t, completed=len(list(out_dir.glob("shard-*.json"))), total=total)
