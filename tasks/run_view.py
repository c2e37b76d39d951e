"""A run as the CLI sees it, without loading the pipeline: the bundle check before it, its
progress while it runs, its summary rows after.

Apart from tasks/asset_stages.py (which imports every stage and so torch, diffusers and the
prompting models) so that a `stepfoley run` whose discovery finds nothing to do imports none
of that (flows/cli_run.py, tasks/discovery.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from models.generation.bundle import has_guidance_branch
from sql.repository import run_asset_rows
from sql.repository import run_progress as progress_counts
from tasks.config import ConfigError, Settings
from tasks.policy import retry_db
from tasks.runs import session


def check_bundle(settings: Settings) -> None:
    """Refuse a run whose bundle is missing, or lacks the guidance branch its mode needs."""
    if not (Path(settings.bundle) / "model_index.json").is_file():
        raise ConfigError(f"model bundle {settings.bundle} not found (no model_index.json); "
                          "train one with `stepfoley train all --out DIR` or pass --bundle")
    if settings.mode == "nag" and not has_guidance_branch(settings.bundle):
        # Refused, never downgraded: a run asked for NAG must not quietly produce independent tracks.
        raise ConfigError(f"model bundle {settings.bundle} has no guidance branch (controlnet/), which "
                          "--mode nag needs; use --mode independent or negative_text, or train one "
                          "(`stepfoley train guidance`)")


def run_progress(run_id: int, settings: Mapping[str, Any]) -> dict[str, tuple[int, int | None]]:
    """(done, total) of the run's assets, windows and tracks."""
    with session(settings) as db:
        return progress_counts(db, run_id)


@retry_db
def run_summary_rows(run_id: int, settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per asset the run took on (unchanged done files are not among them)."""
    with session(settings) as db:
        return [dict(r) for r in run_asset_rows(db, run_id)]
