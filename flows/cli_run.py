"""`stepfoley run` and `stepfoley demo`: the embedded path (local Prefect engine, SQLite)."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import click

from flows.cli_common import cli_settings
from flows.cli_params import ALPHA, BETA, SEED, STEPS
from models.generation.guidance_settings import DEFAULT, MODES
from tasks.library_fs import is_uri
from tasks.media_paths import to_uri
from tasks.warm_imports import import_pipeline_modules

GEN_OPTIONS = [
    # Resolved here: the run records it, and the dashboard serves outputs under it.
    click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path, resolve_path=True),
                 help="Where output videos go (default: DATA_DIR/outputs)."),
    click.option("--prompts", "prompts_csv", type=click.Path(dir_okay=False, path_type=Path),
                 help="CSV of user prompts (asset path or sha256, [start, end], prompt, [order])."),
    click.option("--prompts-mode", type=click.Choice(["extend", "replace"]),
                 help="User prompts extend (default) or replace the captioner's."),
    click.option("--bundle", type=click.Path(file_okay=False, path_type=Path),
                 help="Model bundle directory (default: the shipped foleyworld-tiny)."),
    click.option("--captioner", type=click.Path(exists=True, file_okay=False, path_type=Path),
                 help="Captioner directory (a transformers VLM such as Qwen2.5-VL or SmolVLM, or a "
                      "bundle with captioner/) instead of the bundle's own."),
    click.option("--alpha", type=ALPHA, help=f"Text/video guidance α (default {DEFAULT.alpha:g})."),
    click.option("--beta", type=BETA,
                 help=f"Negative audio guidance β (0 = CFG; default: the β the bundle declares for its "
                      f"branch in guidance.json, else the paper's {DEFAULT.beta:g})."),
    click.option("--steps", type=STEPS, help=f"Euler steps (default {DEFAULT.steps})."),
    click.option("--tracks", type=click.IntRange(1, 16), help="Tracks per scene, K (default 5)."),
    click.option("--seed", type=SEED, help="Base seed mixed into every derived seed (default 0)."),
    click.option("--mode", type=click.Choice(MODES), help=f"Generation mode (default {DEFAULT.mode})."),
    click.option("--container", type=click.Choice(["mkv", "mp4", "mov"]),
                 help="Output container (default mkv: stems inside; mp4: stems as sidecars)."),
    click.option("--concurrency", type=click.IntRange(1, 64), help="Assets in parallel (default 1)."),
    click.option("--limit", type=click.IntRange(1), help="Process at most this many assets."),
]


def gen_options(fn):  # type: ignore[no-untyped-def]
    for opt in reversed(GEN_OPTIONS):
        fn = opt(fn)
    return fn


class LibraryArg(click.ParamType):
    """A local directory (must exist) or an fsspec URI (passed through; discovery checks it)."""

    name = "LIBRARY"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path | str:
        if isinstance(value, str) and is_uri(value):
            return value
        return click.Path(exists=True, path_type=Path).convert(value, param, ctx)


def run_library(ctx: click.Context, library: Path | str, kind: str, **opts: Any) -> int:
    """Run `backfill_library` in-process with live progress bars; returns the exit code."""
    limit = opts.pop("limit", None)
    settings = cli_settings(ctx, **opts)
    # The local Prefect API takes a while to start: fork it first (before this process has
    # other threads, flows/prefect_api.py), so it starts while the run is recorded. When the
    # library has work (tasks/discovery.py: a stat walk and one index query; a nightly rerun
    # of an archive that is all done has none), the pipeline is imported meanwhile and the
    # models load on a helper thread while the server starts and the first asset is probed and
    # cut (tasks/preload.py); when it has none, neither is paid for (~10 s on the 2-core box).
    # CLI start-up: the pipeline (Prefect, SQLAlchemy, torch) loads only when a run starts.
    from flows.prefect_api import local_run_settings, start_local_api
    from tasks import discovery, run_view, runs  # CLI start-up, as above

    run_view.check_bundle(settings)
    api = start_local_api()
    s = settings.to_json()
    where = library if isinstance(library, str) else to_uri(library.resolve())
    work = discovery.has_work(where, s)
    if work:
        # Before any helper thread starts: the preload, the progress display and Prefect's task
        # threads would otherwise import torch/diffusers/transformers concurrently (issue #21).
        # (Without work, backfill_library does it itself if its discovery finds some after all.)
        import_pipeline_modules()
    from flows.backfill import backfill_library  # CLI start-up, as above
    from prefect.task_runners import ThreadPoolTaskRunner

    run_id = runs.start_run(kind, {"library": str(library), "limit": limit}, s)
    preload: threading.Thread | None = None
    if work:
        from tasks.preload import start_preload  # CLI start-up (torch), only when there is work

        preload = start_preload(settings)
    if api is not None:
        api.start()  # waits until it serves
    flow_fn = backfill_library.with_options(
        task_runner=ThreadPoolTaskRunner(max_workers=settings.concurrency))
    # The flow runs on the main thread (task timeouts can interrupt it there); the progress
    # display polls the database from a helper thread.
    done = threading.Event()
    display = threading.Thread(target=_show_progress, args=(done, run_id, s), daemon=True,
                               name="stepfoley-progress")
    display.start()
    try:
        with local_run_settings(api):
            flow_fn(where, s, limit=limit, kind=kind, run_id=run_id)
    finally:
        done.set()
        display.join(timeout=5)
        if preload is not None:
            preload.join()  # (long done unless the run ended early) no load torn down mid-way
    rows = run_view.run_summary_rows(run_id, s)
    if rows:
        _print_summary(rows)
    else:  # a nightly rerun: unchanged done files are neither read nor listed (tasks/known_files.py)
        click.echo("nothing to do: no new or changed video needed work (`stepfoley status` lists "
                   "every asset)")
    return 1 if any(r["status"] == "failed" for r in rows) else 0


def _show_progress(done: threading.Event, run_id: int, s: dict[str, Any]) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, \
        TimeElapsedColumn

    if not sys.stderr.isatty():  # no terminal, no bars: nothing to poll the database for
        done.wait()
        return
    with Progress(TextColumn("{task.description:>8}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), transient=False) as bar:
        ids = {k: bar.add_task(k, total=None) for k in ("assets", "windows", "tracks")}
        while not done.wait(0.5):
            _poll(bar, ids, run_id, s)
        _poll(bar, ids, run_id, s)


def _poll(bar: Any, ids: dict[str, Any], run_id: int, s: dict[str, Any]) -> None:
    """One refresh of the bars; a busy or briefly unreachable database only delays the display
    (the run itself retries), so no error here may end the helper thread or the run."""
    from tasks import run_view  # CLI start-up (loaded by run_library before this thread starts)

    try:
        _update(bar, ids, run_view.run_progress(run_id, s))
    except Exception:
        pass


def _update(bar: Any, ids: dict[str, Any], p: dict[str, tuple[int, int | None]]) -> None:
    for key, (done, total) in p.items():
        bar.update(ids[key], completed=done, total=total)


def _print_summary(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="stepfoley run")
    for col in ("path", "status", "windows", "tracks", "wall s", "output / error"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(str(r["path"]), r["status"], str(r.get("windows") or 0),
                      str(r.get("tracks") or 0), f"{r.get('wall_s') or 0:.1f}",
                      str(r.get("output") or r.get("error") or ""))
    Console(stderr=False).print(table)


def register(cli: click.Group) -> None:
    @cli.command(context_settings={"help_option_names": ["-h", "--help"]})
    @click.argument("library", type=LibraryArg())
    @gen_options
    @click.pass_context
    def run(ctx: click.Context, library: Path | str, **opts: Any) -> None:
        """Give every video under LIBRARY (a directory, or an fsspec URI such as
        file:///srv/archive or s3://bucket/prefix) its sound (embedded: local Prefect, SQLite)."""
        ctx.exit(run_library(ctx, library, "local", **opts))

    @cli.command(context_settings={"help_option_names": ["-h", "--help"]})
    @click.option("--library", "library_dir", type=click.Path(file_okay=False, path_type=Path),
                  help="Where to write the sample footage (default: DATA_DIR/demo-library).")
    @gen_options
    @click.pass_context
    def demo(ctx: click.Context, library_dir: Path | None, **opts: Any) -> None:
        """Build the FoleyWorld sample library and run the whole pipeline on it."""
        from tasks.demo_library import build_demo_library  # CLI start-up: FoleyWorld needs torch

        settings = cli_settings(ctx)
        target = library_dir or settings.data_dir / "demo-library"
        t0 = time.monotonic()
        paths = build_demo_library(target)
        click.echo(f"sample library: {len(paths)} videos in {target} ({time.monotonic() - t0:.1f} s)")
        ctx.exit(run_library(ctx, target, "demo", **opts))
