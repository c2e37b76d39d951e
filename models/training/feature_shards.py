"""Feature shards: what guidance training reads every epoch, extracted once.

Layout of an extraction directory::

    silence.safetensors        the network latent of a silent segment
    index.json                 bundle id, weights sha256, segment length, listing sha256, and
                               per shard: its clips and the sha256 of its tensor file
    shard-00000.safetensors    per clip c of the shard, tensors  "<c>/latent" [S, N, E]
                               (VAE posterior mean, un-normalised), "<c>/clip" [S, Nc, Dc],
                               "<c>/sync" [S, Ns, Ds] (the network's conditioning features)
    shard-00000.json           the shard's manifest (clips, segments, the tensor file's sha256);
                               written after the tensor file, so its presence marks the shard done

Why safetensors shards: a shard is one file opened with ``safe_open`` and read tensor by tensor
through the page cache (zero-copy mmap), portable across machines and torch versions, and its
header carries shapes, so the reader never unpickles anything. A shard is written under a temp
name and renamed, and its manifest after it: a crash leaves no half shard that a reader could
take for a finished one, and ``shard_done`` also checks the recorded hash.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from models.generation.bundle import bundle_identity, file_sha256, path_digest

INDEX = "index.json"
# The components whose weights make the features; the branch's own weights are not among them,
# so training a branch does not invalidate the features it was trained on.
FEATURE_COMPONENTS = ("transformer/", "codec/", "video_features/")
SILENCE = "silence.safetensors"  # the latent of a silent segment (the x̃ = silence control)


def feature_weights_sha256(bundle: str | Path) -> str:
    """sha256 over the weight files of the components that make the features."""
    weights = bundle_identity(bundle)["weights"]
    return path_digest({k: v for k, v in weights.items() if k.startswith(FEATURE_COMPONENTS)})


def check_features(root: str | Path, bundle: str | Path) -> dict[str, Any]:
    """The index of ``root``, refusing features made with other weights than ``bundle``'s."""
    index = json.loads((Path(root) / INDEX).read_text())
    want = feature_weights_sha256(bundle)
    if index.get("feature_weights_sha256") != want:
        raise ValueError(f"{root}: features were extracted with other weights "
                         f"({str(index.get('feature_weights_sha256'))[:12]}) than {bundle}'s ({want[:12]}); "
                         "extract them again for this bundle")
    return index


def shard_name(i: int) -> str:
    return f"shard-{i:05d}"




def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_shard(root: Path, i: int, clips: dict[str, dict[str, torch.Tensor]],
                meta: dict[str, Any]) -> dict[str, Any]:
    """Write shard ``i`` (tensors, then manifest), atomically; returns the manifest."""
    root.mkdir(parents=True, exist_ok=True)
    name = shard_name(i)
    tensors = {f"{c}/{k}": v.detach().to("cpu").contiguous() for c, parts in clips.items()
               for k, v in parts.items()}
    final = root / f"{name}.safetensors"
    tmp = root / f".{name}.{os.getpid()}.tmp"
    save_file(tensors, str(tmp))
    os.replace(tmp, final)
    manifest = {**meta, "shard": i, "clips": sorted(clips), "sha256": file_sha256(final)}
    _write_text_atomic(root / f"{name}.json", json.dumps(manifest, indent=1, sort_keys=True))
    return manifest


def shard_done(root: Path, i: int, verify: bool = False) -> bool:
    """A finished shard: its manifest exists (and, with ``verify``, its tensors hash to it)."""
    man = root / f"{shard_name(i)}.json"
    if not man.is_file():
        return False
    if not verify:
        return True
    data = json.loads(man.read_text())
    tensors = root / f"{shard_name(i)}.safetensors"
    return tensors.is_file() and file_sha256(tensors) == data.get("sha256")


def write_index(root: Path, meta: dict[str, Any], num_shards: int) -> dict[str, Any]:
    shards = [json.loads((root / f"{shard_name(i)}.json").read_text()) for i in range(num_shards)
              if shard_done(root, i)]
    index = {**meta, "num_shards": num_shards, "shards": shards,
             "num_clips": sum(len(s["clips"]) for s in shards)}
    _write_text_atomic(root / INDEX, json.dumps(index, indent=1, sort_keys=True))
    return index


@dataclass
class ClipFeatures:
    key: str
    latent: torch.Tensor  # [S, N, E]
    clip: torch.Tensor    # [S, Nc, Dc]
    sync: torch.Tensor    # [S, Ns, Ds]


def read_shards(root: Path, shards: list[int] | None = None) -> Iterator[ClipFeatures]:
    """Every clip of the listed (default: all finished) shards, in index order."""
    index = json.loads((Path(root) / INDEX).read_text())
    for entry in index["shards"]:
        if shards is not None and entry["shard"] not in shards:
            continue
        path = Path(root) / f"{shard_name(entry['shard'])}.safetensors"
        with safe_open(str(path), framework="pt") as fh:
            for c in entry["clips"]:
                yield ClipFeatures(c, fh.get_tensor(f"{c}/latent"), fh.get_tensor(f"{c}/clip"),
                                   fh.get_tensor(f"{c}/sync"))
