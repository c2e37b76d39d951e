"""Prefect wrapper of :mod:`tasks.regenerate` (GPU-tagged, transient retries only)."""

from __future__ import annotations

from typing import Any

from prefect import task

from tasks.config import settings_from_json
from tasks.policy import retry_transient
from tasks.regenerate import regenerate


@task(name="regenerate-track", tags=["gpu"], retries=2, retry_delay_seconds=[5, 30],
      retry_condition_fn=retry_transient, timeout_seconds=3600)
def regenerate_task(asset: str, scene: int, track: int, settings: dict[str, Any], *,
                    prompt: str | None = None, seed: int | None = None,
                    beta: float | None = None, delete: bool = False) -> dict[str, Any]:
    return regenerate(asset, scene, track, settings_from_json(settings), prompt=prompt,
                      seed=seed, beta=beta, delete=delete)
