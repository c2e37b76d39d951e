"""Data sources of the guidance-branch trainer: where (target, condition) pairs come from.

Every source answers ``pairs(gen, n, part, parts)`` with a ``PairBatch``: the target segment's network
latent x₁ ``[n, N, E]``, the condition x̃ ``[n, N, E]`` (another, non-overlapping segment of
the same clip), and the target's conditioning features ``clip [n, Nc, Dc]``, ``sync [n, Ns,
Ds]`` as the frozen base consumes them. Draws are a pure function of the generator, so the
trainer's per-(seed, step, micro-batch) generators fix every batch, and a resumed or
multi-process run draws exactly what an uninterrupted single-process run would.

- ``ShardPairs``: features extracted once from real footage (models/training/feature_shards.py).
  Clips are read lazily from the memory-mapped shards, never all loaded. Held-out clips (a
  stable hash of their key) are kept for the validation probe. Micro-batch m of a step's M
  (M = ranks × accumulation) draws from part m of the training clips (clip i is in part i mod M),
  so each rank reads only its own share, and one process accumulating the M micro-batches
  draws exactly what M ranks would.
- ``FoleyWorldPairs`` (models/training/bundle_recipes.py builds it): the demo's procedural scenes, 4 s
  halves of 8 s scenes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from safetensors import safe_open

from safetensors.torch import load_file

from models.training.feature_shards import INDEX, SILENCE, shard_name
from models.training.guidance_pairs import draw_pair


@dataclass
class PairBatch:
    x1: torch.Tensor
    cond: torch.Tensor
    clip: torch.Tensor
    sync: torch.Tensor


class PairSource(Protocol):
    def pairs(self, gen: torch.Generator, n: int, part: int = 0, parts: int = 1) -> PairBatch: ...

    def probe_pairs(self, gen: torch.Generator, n: int) -> PairBatch: ...

    def identity(self) -> dict[str, Any]: ...


def _held_out(key: str, percent: float) -> bool:
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 10_000 < percent * 100


class ShardPairs:
    """Pairs drawn from extracted shards (see module docstring)."""

    def __init__(self, root: str | Path, holdout_percent: float = 5.0) -> None:
        self.root = Path(root)
        self.index = json.loads((self.root / INDEX).read_text())
        entries = [(sh["shard"], key) for sh in self.index["shards"] for key in sh["clips"]]
        held = [e for e in entries if _held_out(e[1], holdout_percent)]
        train = [e for e in entries if not _held_out(e[1], holdout_percent)]
        if not train:
            raise ValueError(f"{self.root}: no training clips (of {len(entries)}; {len(held)} held out)")
        self.held = held or train[:1]
        self.train = train
        self._handles: dict[int, Any] = {}

    def _clip(self, entry: tuple[int, str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        shard, key = entry
        fh = self._handles.get(shard)
        if fh is None:
            fh = self._handles[shard] = safe_open(str(self.root / f"{shard_name(shard)}.safetensors"),
                                                   framework="pt")
        return fh.get_tensor(f"{key}/latent"), fh.get_tensor(f"{key}/clip"), fh.get_tensor(f"{key}/sync")

    def _draw(self, entries: list[tuple[int, str]], gen: torch.Generator, n: int) -> PairBatch:
        x1, cond, clip, sync = [], [], [], []
        for _ in range(n):
            lat, c, s = self._clip(entries[int(torch.randint(len(entries), (1,), generator=gen))])
            t, k = draw_pair(lat.shape[0], gen)
            x1.append(lat[t])
            cond.append(lat[k])
            clip.append(c[t])
            sync.append(s[t])
        return PairBatch(torch.stack(x1).float(), torch.stack(cond).float(), torch.stack(clip).float(),
                         torch.stack(sync).float())

    def pairs(self, gen: torch.Generator, n: int, part: int = 0, parts: int = 1) -> PairBatch:
        return self._draw(self.train[part::parts] or self.train, gen, n)

    def probe_pairs(self, gen: torch.Generator, n: int) -> PairBatch:
        return self._draw(self.held, gen, n)

    def other_clip_condition(self, batch: PairBatch, gen: torch.Generator, held_out: bool = True) -> torch.Tensor:
        """x̃ taken from another clip for each row (the 'does u_ψ listen to x̃' control)."""
        entries = self.held if held_out and len(self.held) > 1 else self.held + self.train
        out = []
        for _ in range(batch.x1.shape[0]):
            lat, _, _ = self._clip(entries[int(torch.randint(len(entries), (1,), generator=gen))])
            out.append(lat[int(torch.randint(lat.shape[0], (1,), generator=gen))])
        return torch.stack(out).float()

    def silence(self) -> torch.Tensor | None:
        path = self.root / SILENCE
        return load_file(str(path))["latent"] if path.is_file() else None

    def identity(self) -> dict[str, Any]:
        keys = ("source", "listing_sha256", "bundle_id", "feature_weights_sha256", "segment_s", "num_clips")
        return {"kind": "shards", "root": str(self.root), **{k: self.index.get(k) for k in keys}}
