"""Shared bits of the audio-chain tests: the fixture folder, the real-size manifest, meta tensors."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import torch

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "mmaudio-family"


@functools.lru_cache(maxsize=1)
def manifest() -> dict[str, Any]:
    return json.loads((FIX / "mmaudio_features_state_dict_manifest.json").read_text())


def manifest_entry(prefix: str) -> dict[str, Any]:
    """The manifest entry whose name starts with ``prefix`` (e.g. ``vae_16k``)."""
    (name,) = [k for k in manifest() if k.startswith(prefix + " ") or k == prefix]
    return manifest()[name]


def meta_state_dict(keys: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    """Shape-only tensors standing in for a real-size checkpoint (no memory, no compute)."""
    return {k: torch.empty(shape, device="meta") for k, shape in keys.items()}


def shapes(module: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in module.state_dict().items()}


def max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())
