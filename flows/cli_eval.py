"""`stepfoley eval`: the paper's comparison on held-out FoleyWorld scenes (models.evaluation.evaluate)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from flows.cli_params import ALPHA, BETA, STEPS
from models.generation.guidance_settings import DEFAULT
from tasks.config import ConfigError

CTX = {"help_option_names": ["-h", "--help"]}
# --quick: NAG at the method comparison's β only (the bundle's declared one unless --beta), no
# further β sweep (0 is the independent condition).
QUICK = {"scenes": 4, "betas": "0", "orders": "descending", "tracks": "2..2", "steps": 6}


def _seed_range(text: str) -> range:
    """``A:B`` → range(A, B); whether it lies in the test split is EvalConfig.validate's call."""
    try:
        a, b = (int(x) for x in text.split(":"))
    except ValueError as exc:
        raise ConfigError(f"--seeds must be A:B (integers), got {text!r}") from exc
    if b <= a:
        raise ConfigError(f"--seeds {text}: B must be greater than A")
    return range(a, b)


def _floats(text: str, name: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise ConfigError(f"--{name} must be comma-separated numbers, got {text!r}") from exc


def _words(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _tracks(text: str) -> tuple[int, int]:
    try:
        lo, _, hi = text.partition("..")
        return int(lo), int(hi or lo)
    except ValueError as exc:
        raise ConfigError(f"--tracks must be N or A..B, got {text!r}") from exc


def register(cli: click.Group) -> None:
    @cli.command("eval", context_settings=CTX)
    @click.option("--bundle", type=click.Path(exists=True, file_okay=False, path_type=Path),
                  help="Model bundle with an evaluator/ (default: the shipped foleyworld-tiny).")
    @click.option("--seeds", help="Held-out FoleyWorld test seeds A:B (default: 40 scenes; --quick: 4).")
    @click.option("--methods", default="independent,negative_text,nag", show_default=True)
    @click.option("--betas", default="0,0.5,1,1.5,2,3", show_default=True, help="NAG β sweep.")
    @click.option("--beta", type=BETA, default=None,
                  help="β of the method comparison (default: the bundle's declared β, else 1.5).")
    @click.option("--alpha", type=ALPHA, default=DEFAULT.alpha, show_default=True, help="CFG strength α.")
    @click.option("--orders", default="descending,random,ascending", show_default=True,
                  help="Generation orders by salience; the first is the main one.")
    @click.option("--tracks", default="2..3", show_default=True, help="Sources per scene, N or A..B within 2..5.")
    @click.option("--steps", type=STEPS, default=DEFAULT.steps, show_default=True, help="Euler steps.")
    @click.option("--no-yamnet", is_flag=True, help="Skip the independent YAMNet judge.")
    @click.option("--threads", type=click.IntRange(1, 64), default=1, show_default=True)
    @click.option("--quick", is_flag=True, help="A small configuration that runs in a few minutes.")
    @click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
                  help="Report directory (report.md, results.json, PNGs).")
    def eval_cmd(bundle: Path | None, seeds: str | None, methods: str, betas: str, beta: float | None, alpha: float,
                 orders: str, tracks: str, steps: int, no_yamnet: bool, threads: int, quick: bool,
                 out: Path) -> None:
        """Compare NAG with independent CFG and negative-text prompting on held-out scenes."""
        # CLI start-up: the evaluation stack (torch, FoleyWorld) loads only for this command
        from models.training import foleyworld as fw
        from models.evaluation.report import write_report  # (same reason)
        from models.evaluation.evaluate import EvalConfig, run_evaluation  # (same reason)
        from models.training.train import DEFAULT_BUNDLE_DIR  # (same reason)

        bundle = bundle or DEFAULT_BUNDLE_DIR
        if not (bundle / "evaluator").is_dir():
            raise ConfigError(f"{bundle} has no evaluator/ (train one: stepfoley train evaluator --out {bundle})")
        start = fw.SPLITS["test"].start
        if quick:
            seed_range = _seed_range(seeds) if seeds else range(start, start + QUICK["scenes"])
            betas, orders, tracks, steps = QUICK["betas"], QUICK["orders"], QUICK["tracks"], QUICK["steps"]
        else:
            seed_range = _seed_range(seeds) if seeds else range(start, start + 40)
        cfg = EvalConfig(seeds=seed_range, methods=_words(methods), betas=_floats(betas, "betas"),
                         orders=_words(orders), tracks=_tracks(tracks), steps=steps, alpha=alpha, beta=beta,
                         yamnet=not no_yamnet, threads=threads)
        try:
            cfg.validate()
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
            TimeRemainingColumn

        if sys.stderr.isatty():
            with Progress(TextColumn("[bold]tracks"), BarColumn(), MofNCompleteColumn(),
                          TextColumn("{task.fields[cond]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                          transient=False) as bar:
                task = bar.add_task("eval", total=None, cond="")
                res = run_evaluation(bundle, cfg,
                                     progress=lambda cond, done, total: bar.update(task, completed=done, total=total,
                                                                                   cond=cond))
        else:  # a log file: a plain line every 5 % instead of a bar that only renders at the end
            t0 = time.time()

            def log_line(cond: str, done: int, total: int) -> None:
                if done == total or done % max(1, total // 20) == 0:
                    click.echo(f"tracks {done}/{total}  {cond}  {time.time() - t0:.0f} s", err=True)

            res = run_evaluation(bundle, cfg, progress=log_line)
        paths, s = write_report(res, out)
        for g in s["gates"]:
            click.echo(f"{'PASS' if g['passed'] else 'FAIL'}  {g['gate']}")
        click.echo(f"report: {paths['report']}  ({res.timings['total_s'] / 60:.1f} min, "
                   f"{res.timings['tracks_generated']} tracks)")
