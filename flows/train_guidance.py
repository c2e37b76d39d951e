"""Train the guidance branch u_ψ of a bundle on extracted features, on the `gpu` pool."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task

from models.training.bundle_recipes import train_guidance

# One long GPU job: no retries (a rerun resumes from the last checkpoint anyway), and the run's
# own checkpoints, not Prefect's result store, carry its state.
train_guidance_task = task(name="train-guidance", tags=["gpu"], retries=0)(train_guidance)


@flow(name="train-guidance", flow_run_name="guidance {bundle}", log_prints=False)
def train_guidance_flow(bundle: str, features: str, steps: int = 3000, batch: int = 8,
                        grad_accum: int = 1, seed: int = 0, threads: int = 1) -> dict[str, Any]:
    """u_ψ for ``bundle``'s network on ``features`` (`stepfoley extract-features`); resumes
    from the bundle's ``_runs/guidance/state.pt`` when a previous run was interrupted."""
    return train_guidance_task(Path(bundle), seed=seed, threads=threads, steps=steps, batch=batch,
                               features=Path(features), grad_accum=grad_accum, quiet=True)
