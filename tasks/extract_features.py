"""Stage: extract guidance-training features from a source, once, as resumable shards.

The source's clips are listed in a stable order and cut into shards of ``shard_size`` clips;
shard i holds the features of clips [i·size, (i+1)·size) (tasks/guidance_data.py) and is
written atomically (models/training/feature_shards.py). A rerun skips every finished shard, so
an interrupted extraction resumes where it stopped and a finished one costs a directory
listing. Skipped clips are recorded in their shard's manifest with the reason, and counted by
reason in the index. The bundle id and weights hash go into every manifest: features made with
other weights are never mixed into one training set (models/training/feature_shards.py
``check_features`` refuses them at training time).
"""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.torch import save_file

from models.training.feature_shards import (INDEX, SILENCE, feature_weights_sha256, shard_done, write_index,
                                            write_shard)
from tasks.generate import load_bundle
from tasks.guidance_data import ClipRef, Skip, clip_features, iter_shards, list_source, listing_sha256


def default_segment_s(pipe: Any) -> float:
    """The paper's 4 s pairs for MMAudio bundles; the demo trains on halves of its 8 s window
    too, so 4 s for every bundle whose window is 8 s (half the window otherwise)."""
    return float(pipe.max_duration_s) / 2.0


def plan_extraction(source: str, out: Path, bundle: str, cache_dir: Path, shard_size: int = 64,
                    segment_s: float | None = None, video_dir: str | None = None,
                    device: str = "cpu") -> dict[str, Any]:
    """List the source and fix the run's metadata (written to ``out/plan.json``)."""
    clips, skips = list_source(source, cache_dir, video_dir)
    loaded = load_bundle(bundle, device)
    seg = float(segment_s) if segment_s else default_segment_s(loaded.pipe)
    meta = {"source": str(source), "bundle": str(bundle), "bundle_id": loaded.bundle_id,
            "weights_sha256": loaded.weights_sha256, "segment_s": seg,
            "feature_weights_sha256": feature_weights_sha256(bundle),
            "listing_sha256": listing_sha256(clips), "shard_size": int(shard_size)}
    out.mkdir(parents=True, exist_ok=True)
    previous = out / "plan.json"
    if previous.is_file():
        old = json.loads(previous.read_text())
        keys = ("feature_weights_sha256", "segment_s", "listing_sha256", "shard_size")
        if {k: old.get(k) for k in keys} != {k: meta[k] for k in keys}:
            raise ValueError(f"{out} holds an extraction of other weights, segments, clips or shard size; "
                             "use a new --out directory")
    # x̃ of silence, for the 'does the branch listen to x̃' control (models/training/guidance.py)
    silence = loaded.pipe.encode_audio(np.zeros(int(seg * loaded.pipe.codec.sample_rate), np.float32), seg)[0]
    tmp = out / f".{SILENCE}.tmp"
    save_file({"latent": silence.float().contiguous().cpu()}, str(tmp))
    tmp.replace(out / SILENCE)
    shards = [[c.__dict__ for c in part] for _, part in iter_shards(clips, shard_size)]
    previous.write_text(json.dumps({**meta, "num_shards": len(shards)}, indent=1, sort_keys=True))
    return {"meta": meta, "shards": shards, "listing_skips": [s.__dict__ for s in skips]}


def extract_shard(i: int, clips: list[dict[str, Any]], out: Path, meta: dict[str, Any],
                  device: str = "cpu", threads: int = 1) -> dict[str, Any]:
    """Features of one shard's clips, written atomically; a finished shard is not redone."""
    if shard_done(out, i):
        return json.loads((out / f"shard-{i:05d}.json").read_text())
    pipe = load_bundle(meta["bundle"], device, threads).pipe
    feats: dict[str, Any] = {}
    skipped: list[dict[str, str]] = []
    for raw in clips:
        ref = ClipRef(**raw)
        got = clip_features(pipe, ref, float(meta["segment_s"]))
        if isinstance(got, Skip):
            skipped.append(got.__dict__)
        else:
            feats[ref.key] = got
    return write_shard(out, i, feats, {**meta, "skipped": skipped})


def finish_extraction(out: Path, meta: dict[str, Any], num_shards: int,
                      listing_skips: list[dict[str, str]]) -> dict[str, Any]:
    """The index over every finished shard, with skip counts by reason."""
    index = write_index(out, meta, num_shards)
    reasons = collections.Counter(s["reason"] for s in listing_skips)
    reasons.update(s["reason"] for sh in index["shards"] for s in sh.get("skipped", []))
    index["skipped"] = dict(sorted(reasons.items()))
    (out / INDEX).write_text(json.dumps(index, indent=1, sort_keys=True))
    return index
