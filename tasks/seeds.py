"""Deterministic seeds for every stochastic step.

seed = int(sha256("asset_sha|scene|window|track|prompt|config_hash|base_seed")[:15], 16)

Deriving the seed from the natural key (instead of drawing it from a global RNG) makes a
resumed or redistributed run produce bit-identical tracks: the same window of the same
content under the same configuration always starts from the same noise, whichever worker
generates it and in whichever order.
"""

from __future__ import annotations

import hashlib


def derive_seed(asset_sha256: str, scene_index: int, window_index: int, track_order: int,
                prompt: str, config_hash: str, base_seed: int = 0) -> int:
    """A 60-bit seed (fits int64 and torch.Generator.manual_seed) for one track."""
    key = "|".join([asset_sha256, str(scene_index), str(window_index), str(track_order),
                    " ".join(prompt.lower().split()), config_hash, str(base_seed)])
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:15], 16)
