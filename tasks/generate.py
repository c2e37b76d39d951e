"""Generation of one window's tracks, in order, each against the audio that already exists.

For window w with prompts C_1..C_K (most salient first) and original audio a_0 (or silence):

    negatives_1 = a_0
    track_k     = NAG(video_w, C_k, negatives_k)        (β = 0 when negatives_k is silent)
    negatives_{k+1} = negatives_k + track_k

Each track is written (temp file + rename) and recorded as soon as it exists, so a crash loses
at most the track in progress. A rerun finds the recorded tracks (same prompt, same config
hash, stem file present with the recorded sha256), re-reads their audio into the negatives and
continues with the first missing one; seeds are derived from the natural key, so the result is
identical to an uninterrupted run. The model bundle is loaded once per worker process. Its
Prefect tasks (generate-window, tagged and untagged) are declared in tasks/prefect_tasks.py.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from diffusers.utils import logging as dlogging

from models.generation.bundle import place
from models.generation.pipeline import StepByStepV2APipeline
from sql.repository import record_model_bundle, set_track_status, track_history, upsert_track
from sql.session import session_scope
from tasks.audio import original_audio
from tasks.audio_files import fit_length, write_flac_atomic
from tasks.bundle_identity import cached_bundle_identity
from tasks.config import Settings, settings_from_json
from tasks.frames import read_frames
from tasks.ingest import sha256_file
from tasks.model_cache import loaded_once
from tasks.runs import engine_for
from tasks.seeds import derive_seed


@dataclass(frozen=True)
class LoadedBundle:
    pipe: Any
    bundle_id: str
    weights_sha256: str
    content_sha256: str
    files: dict[str, str]  # {relative path: sha256} of every content file (weights, configs, tokenizer)
    path: str
    sample_rate: int
    frame_specs: dict[str, Any]
    max_duration_s: float


@loaded_once(maxsize=2)
def load_bundle(bundle_dir: str, device: str, threads: int = 1, dtype: str | None = None) -> LoadedBundle:
    """The pipeline of a local bundle directory, cached per (dir, device) in this process.

    ``dtype`` (default: ``STEPFOLEY_DTYPE``, else ``auto`` = bfloat16 on CUDA, float32 on the CPU)
    is the network's and the encoders' compute dtype; the codec stays float32
    (``models.generation.bundle.place``). Like the device, it is the worker's to decide."""
    if device == "cpu":
        torch.set_num_threads(max(1, int(threads)))
    dlogging.disable_progress_bar()
    pipe = StepByStepV2APipeline.from_pretrained(bundle_dir)
    pipe.set_progress_bar_config(disable=True)
    place(pipe, device, dtype or os.environ.get("STEPFOLEY_DTYPE") or "auto")
    ident = cached_bundle_identity(bundle_dir)
    return LoadedBundle(pipe=pipe, bundle_id=ident["bundle_id"],
                        weights_sha256=ident["weights_sha256"],
                        content_sha256=ident["content_sha256"], files=dict(ident["files"]),
                        path=str(Path(bundle_dir).expanduser().resolve()),
                        sample_rate=int(pipe.codec.sample_rate),
                        frame_specs=pipe.video_features.frame_specs(),
                        max_duration_s=float(pipe.max_duration_s))


def record_bundle(session: Any, bundle: LoadedBundle) -> None:
    """The bundle's provenance row (every file's sha256), written with the first track it makes.

    Idempotent (an upsert on the bundle id); tracks name their bundle by ``bundle_id`` and
    ``weights_sha256``, the ``model_bundle`` row says which files, with which hashes, those are."""
    record_model_bundle(session, bundle_id=bundle.bundle_id, content_sha256=bundle.content_sha256,
                        weights_sha256=bundle.weights_sha256, files=bundle.files, path=bundle.path)


def stem_path(settings: Settings, job: dict[str, Any], order: int, version: int) -> Path:
    return (settings.stems_dir / job["asset_sha256"][:16] /
            f"scene{job['scene_index']:03d}_w{job['window_index']:02d}_t{order:02d}_v{version}.flac")


def read_stem(path: Path, expected_sha: str | None, n: int) -> np.ndarray | None:
    """A recorded stem's samples, or None when the file is gone or not what was recorded."""
    if not path.is_file() or (expected_sha and sha256_file(path) != expected_sha):
        return None
    wave, _ = sf.read(path, dtype="float32", always_2d=False)
    return fit_length(wave, n)


def window_inputs(job: dict[str, Any], bundle: LoadedBundle) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Frames at the bundle's rates and the window's original audio (None when silent)."""
    start, end = float(job["start_s"]), float(job["end_s"])
    video = {name: read_frames(job["path"], start, end, spec)
             for name, spec in bundle.frame_specs.items()}
    original = original_audio(job["path"], start, end, bundle.sample_rate)
    return video, original


def generate_window(job: dict[str, Any], settings: Settings) -> list[dict[str, Any]]:
    """Generate (or resume) the current tracks of one window; returns their track rows.

    Per track order: a deleted take stays deleted (the operator's decision); a current take
    made with this configuration and prompt, or an operator's regenerated take (version > 1),
    is reused if its stem file is intact; a take whose file is gone is regenerated with its
    recorded seed; otherwise a new version is generated and the old one superseded.
    """
    bundle = load_bundle(str(settings.bundle), settings.device, settings.threads)
    engine = engine_for(settings)
    n = int(round(window_duration(job) * bundle.sample_rate))
    video, original = window_inputs(job, bundle)
    negatives = fit_length(original, n) if original is not None else np.zeros(n, np.float32)
    has_negative = original is not None
    config_hash = settings.generation_hash()
    with session_scope(engine) as session:
        latest = {t["order"]: t for t in track_history(session, job["window_id"])}
    rows: list[dict[str, Any]] = []
    rows_written = False
    earlier_prompts: list[str] = []
    for prompt in job["prompts"]:
        order, text = int(prompt["order"]), prompt["text"]
        prev = latest.get(order)
        seed = derive_seed(job["asset_sha256"], job["scene_index"], job["window_index"], order,
                           text, config_hash, settings.seed)
        version = 1
        if prev is not None and prev["status"] == "deleted":
            continue
        if prev is not None and prev["status"] == "current" and (
                prev["version"] > 1 or (prev["config_hash"] == config_hash and prev["prompt_text"] == text)):
            wave = read_stem(Path(prev["stem_uri"]), prev["stem_sha256"], n)
            if wave is not None:
                negatives += wave
                has_negative = True
                earlier_prompts.append(prev["prompt_text"])
                rows.append(prev)
                continue
            version, seed, text = int(prev["version"]), int(prev["seed"]), prev["prompt_text"]
        elif prev is not None:
            version = int(prev["version"]) + 1
        row = generate_take(bundle, settings, job, video, text=text, order=order,
                            version=version, seed=seed,
                            negative=negatives if has_negative else None,
                            earlier_prompts=earlier_prompts, config_hash=config_hash,
                            prompt_id=prompt.get("id"))
        with session_scope(engine) as session:
            if not rows_written:
                record_bundle(session, bundle)
                rows_written = True
            row["id"] = upsert_track(session, **row)
            if prev is not None and prev["version"] != version:
                set_track_status(session, prev["id"], "superseded")
        wave = read_stem(Path(row["stem_uri"]), None, n)
        negatives += wave
        has_negative = True
        earlier_prompts.append(text)
        rows.append(row)
    return rows


def window_duration(job: dict[str, Any]) -> float:
    return float(job["end_s"]) - float(job["start_s"])


def generate_take(bundle: LoadedBundle, s: Settings, job: dict[str, Any],
                  video: dict[str, np.ndarray], *, text: str, order: int, version: int, seed: int,
                  negative: np.ndarray | None, earlier_prompts: list[str], config_hash: str,
                  prompt_id: int | None) -> dict[str, Any]:
    """One take of track ``order`` of the window ``job`` through the pipeline, written to its
    stem file; returns the track row (recorded under ``config_hash``)."""
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    out = bundle.pipe.generate_track(
        video=video, duration=window_duration(job), prompt=text, negative_audio=negative,
        negative_prompts=earlier_prompts, alpha=s.alpha,
        # β as set: the pipeline applies it only in nag mode with negatives (effective_beta)
        beta=s.beta, num_inference_steps=s.steps, mode=s.mode, seed=seed)
    wall = time.perf_counter() - t0
    path = stem_path(s, job, order, version)
    sha = write_flac_atomic(path, out.waveform, bundle.sample_rate)
    return {
        "window_id": job["window_id"], "order": order, "version": version, "prompt_id": prompt_id,
        "prompt_text": text, "seed": seed, "alpha": s.alpha, "beta": out.settings.get("beta", s.beta),
        "steps": s.steps, "mode": s.mode, "bundle_id": bundle.bundle_id,
        "weights_sha256": bundle.weights_sha256, "config_hash": config_hash,
        "stem_uri": str(path.resolve()), "stem_sha256": sha, "started_at": started,
        "finished_at": datetime.now(timezone.utc), "device": f"{s.device}@{socket.gethostname()}",
        "wall_s": wall, "status": "current",
    }


# What a window's result carries (and its cache record keeps): ids, paths, hashes, no audio.
RESULT_FIELDS = ("id", "window_id", "order", "version", "prompt_text", "seed", "config_hash",
                 "stem_uri", "stem_sha256", "status")


def run_window(job: dict[str, Any], settings: dict[str, Any]) -> list[dict[str, Any]]:
    """``generate_window`` on JSON settings; the result keeps only ``RESULT_FIELDS``."""
    rows = generate_window(job, settings_from_json(settings))
    return [{k: row.get(k) for k in RESULT_FIELDS} for row in rows]
