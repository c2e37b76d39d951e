"""Generation of windows' tracks, in order, each against the audio that already exists.

For window w with prompts C_1..C_K (most salient first) and original audio a_0 (or silence):

    negatives_1 = a_0
    track_k     = NAG(video_w, C_k, negatives_k)        (β = 0 when negatives_k is silent)
    negatives_{k+1} = negatives_k + track_k

Windows are independent, so a batch of B windows is generated one track position at a time:
track k of every window of the batch that needs it, in one batched integration where their
lengths and guidance kinds agree (``generate_windows``; the unbatched window is the batch of
one). Each track is written (temp file + rename) and recorded as soon as it exists, so a crash
loses at most the tracks in progress. A rerun finds the recorded tracks (same prompt, same
config hash, stem file present with the recorded sha256), re-reads their audio into the
negatives and continues with the first missing one; seeds are derived from the natural key,
so the result is identical to an uninterrupted run. The model bundle is loaded once per
worker process. Its Prefect tasks (generate-window, tagged and untagged) are declared in
tasks/prefect_tasks.py.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from diffusers.utils import logging as dlogging

from models.generation.batched import TrackRequest, generate_tracks_batched
from models.generation.bundle import place
from models.generation.pipeline import StepByStepV2APipeline, TrackResult
from sql.repository import record_model_bundle, set_track_status, track_history, upsert_track
from sql.session import session_scope
from tasks.audio import original_audio
from tasks.audio_files import fit_length, write_flac_atomic
from tasks.bundle_identity import cached_bundle_identity
from tasks.config import Settings, settings_from_json
from tasks.errors import TransientError
from tasks.frames import read_frames
from tasks.ingest import sha256_file
from tasks.model_cache import loaded_once
from tasks.policy import is_transient
from tasks.runs import engine_for
from tasks.seeds import derive_seed


# Guidance modes the batched ODE runs (negative_text goes window by window).
BATCHED_MODES = ("nag", "independent")


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


def window_duration(job: dict[str, Any]) -> float:
    return float(job["end_s"]) - float(job["start_s"])


@dataclass
class WindowState:
    """One window of a batch between two of its tracks: what its next track is guided away
    from (the original audio plus its tracks so far) and the track rows it has."""

    job: dict[str, Any]
    n: int = 0
    video: dict[str, np.ndarray] | None = None
    negatives: np.ndarray | None = None
    has_negative: bool = False
    earlier_prompts: list[str] = field(default_factory=list)
    latest: dict[int, dict[str, Any]] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: BaseException | None = None

    def add(self, text: str, wave: np.ndarray, row: dict[str, Any]) -> None:
        """Track ``text`` exists now: the window's next tracks are guided away from it too."""
        assert self.negatives is not None
        self.negatives += wave
        self.has_negative = True
        self.earlier_prompts.append(text)
        self.rows.append(row)


@dataclass(frozen=True, eq=False)
class Take:
    """What one window needs at one track position: a take to generate (``record``), or the
    take it keeps (``kept``: its recorded samples)."""

    state: WindowState
    order: int
    text: str
    version: int
    seed: int
    prompt_id: int | None
    prev: dict[str, Any] | None
    record: bool
    kept: np.ndarray | None = None

    @property
    def group(self) -> tuple[Any, ...]:
        """Takes of one position that share an integration: same window length (the network's
        sequence lengths) and guidance kind (NAG once there are negatives, CFG before)."""
        return (round(window_duration(self.state.job), 6), self.state.has_negative)

    def made_in_a_batch(self, settings: Settings, config_hash: str) -> bool:
        """Is this kept take the one a batch of this configuration made (see generate_windows)?"""
        job, prev = self.state.job, self.prev or {}
        return (not self.record and self.version == 1 and (prev.get("batch_size") or 1) > 1
                and self.seed == derive_seed(job["asset_sha256"], job["scene_index"],
                                             job["window_index"], self.order, self.text,
                                             config_hash, settings.seed))


def prepare_window(job: dict[str, Any], bundle: LoadedBundle, engine: Any) -> WindowState:
    """A window before its first track: frames, original audio (the first negatives) and the
    takes already recorded for it."""
    n = int(round(window_duration(job) * bundle.sample_rate))
    video, original = window_inputs(job, bundle)
    negatives = fit_length(original, n) if original is not None else np.zeros(n, np.float32)
    with session_scope(engine) as session:
        latest = {t["order"]: t for t in track_history(session, job["window_id"])}
    return WindowState(job=job, n=n, video=video, negatives=negatives,
                       has_negative=original is not None, latest=latest)


def plan_take(w: WindowState, prompt: dict[str, Any], settings: Settings,
              config_hash: str) -> Take | None:
    """What window ``w`` needs for ``prompt`` (None: nothing, its take was deleted).

    A deleted take stays deleted (the operator's decision); a current take made with this
    configuration and prompt, or an operator's regenerated take (version > 1), is kept if its
    stem file is intact; a take whose file is gone is regenerated with its recorded seed;
    otherwise a new version is generated and the old one superseded."""
    order, text = int(prompt["order"]), prompt["text"]
    job, prev = w.job, w.latest.get(order)
    seed = derive_seed(job["asset_sha256"], job["scene_index"], job["window_index"], order,
                       text, config_hash, settings.seed)
    version = 1
    if prev is not None and prev["status"] == "deleted":
        return None
    if prev is not None and prev["status"] == "current" and (
            prev["version"] > 1 or (prev["config_hash"] == config_hash and prev["prompt_text"] == text)):
        wave = read_stem(Path(prev["stem_uri"]), prev["stem_sha256"], w.n)
        if wave is not None:
            return Take(w, order, prev["prompt_text"], int(prev["version"]), int(prev["seed"]),
                        prompt.get("id"), prev, record=False, kept=wave)
        version, seed, text = int(prev["version"]), int(prev["seed"]), prev["prompt_text"]
    elif prev is not None:
        version = int(prev["version"]) + 1
    return Take(w, order, text, version, seed, prompt.get("id"), prev, record=True)


def generate_window(job: dict[str, Any], settings: Settings) -> list[dict[str, Any]]:
    """Generate (or resume) the current tracks of one window; returns their track rows.

    The batch of one window (``generate_windows``); a failure raises the window's own error."""
    (w,) = generate_windows([job], settings)
    if w.error is not None:
        raise w.error
    return w.rows


def generate_windows(jobs: list[dict[str, Any]], settings: Settings) -> list[WindowState]:
    """Generate (or resume) the tracks of a batch of windows, one track position at a time.

    At position i, the windows' takes that must be made and share a ``Take.group`` go through
    one batched integration (models/generation/batched.py: each its own seed, so the seeds per
    (asset, scene, window, track) are unchanged); a group of one goes through
    ``generate_take``, the unbatched call, so a batch of one is the unbatched window bit for
    bit. Each take is written and recorded as soon as its group is done, and joins its
    window's negatives (read back from its stem, as a resumed run reads it).

    A batched row equals the unbatched one to float tolerance, but its bits depend on the
    batch it was in. A resumed batch (a killed agent's, dispatched again as the same windows)
    therefore recomputes, without recording, a kept take that a batch made
    (``Take.made_in_a_batch``) when its group still has a take to make: the integration is
    then the one the uninterrupted run did, and so are the bits of the missing takes.

    A window that fails (its inputs unreadable, its take not generated, written or recorded)
    keeps the error in its state and leaves the batch; the other windows go on."""
    bundle = load_bundle(str(settings.bundle), settings.device, settings.threads)
    engine = engine_for(settings)
    config_hash = settings.generation_hash()
    windows: list[WindowState] = []
    for job in jobs:
        try:
            windows.append(prepare_window(job, bundle, engine))
        except Exception as exc:  # this window's own (a bad file, a lost row), not the batch's
            windows.append(WindowState(job=job, error=exc))
    bundle_recorded = [False]
    for i in range(max((len(j["prompts"]) for j in jobs), default=0)):
        groups: dict[tuple[Any, ...], list[Take]] = {}
        for w in windows:
            if w.error is None and i < len(w.job["prompts"]):
                try:
                    take = plan_take(w, w.job["prompts"][i], settings, config_hash)
                except Exception as exc:  # its recorded stem unreadable: this window's own
                    w.error = exc
                    continue
                if take is not None:
                    groups.setdefault(take.group, []).append(take)
        for group in groups.values():
            work = [t for t in group if t.record]
            made: dict[int, dict[str, Any] | BaseException] = {}
            if work:
                work = [t for t in group if t.record or t.made_in_a_batch(settings, config_hash)]
                made = generate_group(bundle, settings, work, config_hash)
            for t in group:
                if t.record:
                    record_take(engine, bundle, t, made[id(t)], bundle_recorded)
                else:
                    assert t.kept is not None and t.prev is not None
                    t.state.add(t.text, t.kept, t.prev)
    return windows


def generate_group(bundle: LoadedBundle, s: Settings, takes: list[Take],
                   config_hash: str) -> dict[int, dict[str, Any] | BaseException]:
    """One group's takes through the model, their stems written; per take to record (by
    ``id``) its track row, or the error that stopped it."""
    if len(takes) == 1 or s.mode not in BATCHED_MODES:
        return {id(t): _one_take(bundle, s, t, config_hash) for t in takes if t.record}
    requests = [TrackRequest(video=t.state.video, duration=window_duration(t.state.job),
                             prompt=t.text, seed=t.seed, alpha=s.alpha, beta=s.nag_beta,
                             steps=s.steps, mode=s.mode,
                             negative_audio=t.state.negatives if t.state.has_negative else None)
                for t in takes]
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    try:
        results = generate_tracks_batched(bundle.pipe, requests)
    except Exception as exc:  # one integration: every window in it has failed
        return {id(t): exc for t in takes if t.record}
    # each take's share, so a device's model seconds add up to its busy time
    wall = (time.perf_counter() - t0) / len(takes)
    made: dict[int, dict[str, Any] | BaseException] = {}
    for t, res in zip(takes, results):
        if not t.record:
            continue
        try:
            made[id(t)] = take_row(bundle, s, t.state.job, res, text=t.text, order=t.order,
                                   version=t.version, seed=t.seed, config_hash=config_hash,
                                   prompt_id=t.prompt_id, started=started, wall=wall,
                                   batch_size=len(takes))
        except Exception as exc:  # its stem could not be written: this window's failure
            made[id(t)] = exc
    return made


def _one_take(bundle: LoadedBundle, s: Settings, t: Take, config_hash: str) -> dict[str, Any] | BaseException:
    try:
        assert t.state.video is not None
        return generate_take(bundle, s, t.state.job, t.state.video, text=t.text,
                             order=t.order, version=t.version, seed=t.seed,
                             negative=t.state.negatives if t.state.has_negative else None,
                             earlier_prompts=list(t.state.earlier_prompts),
                             config_hash=config_hash, prompt_id=t.prompt_id)
    except Exception as exc:  # the window's failure; the batch goes on
        return exc


def record_take(engine: Any, bundle: LoadedBundle, t: Take, made: dict[str, Any] | BaseException,
                bundle_recorded: list[bool]) -> None:
    """Record a generated take (superseding the one it replaces) and add it to its window's
    negatives; a take that failed fails its window."""
    w = t.state
    if isinstance(made, BaseException):
        w.error = made
        return
    try:
        with session_scope(engine) as session:
            if not bundle_recorded[0]:
                record_bundle(session, bundle)
                bundle_recorded[0] = True
            made["id"] = upsert_track(session, **made)
            if t.prev is not None and t.prev["version"] != t.version:
                set_track_status(session, t.prev["id"], "superseded")
        wave = read_stem(Path(made["stem_uri"]), None, w.n)
    except Exception as exc:
        w.error = exc
        return
    assert wave is not None
    w.add(t.text, wave, made)


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
        beta=s.nag_beta, num_inference_steps=s.steps, mode=s.mode, seed=seed)
    wall = time.perf_counter() - t0
    return take_row(bundle, s, job, out, text=text, order=order, version=version, seed=seed,
                    config_hash=config_hash, prompt_id=prompt_id, started=started, wall=wall,
                    batch_size=1)


def take_row(bundle: LoadedBundle, s: Settings, job: dict[str, Any], out: TrackResult, *,
             text: str, order: int, version: int, seed: int, config_hash: str,
             prompt_id: int | None, started: datetime, wall: float, batch_size: int) -> dict[str, Any]:
    """A generated take's stem, written (temp file + rename), and its track row."""
    path = stem_path(s, job, order, version)
    sha = write_flac_atomic(path, out.waveform, bundle.sample_rate)
    return {
        "window_id": job["window_id"], "order": order, "version": version, "prompt_id": prompt_id,
        "prompt_text": text, "seed": seed, "alpha": s.alpha, "beta": out.settings.get("beta", s.nag_beta),
        "steps": s.steps, "mode": s.mode, "bundle_id": bundle.bundle_id,
        "weights_sha256": bundle.weights_sha256, "config_hash": config_hash,
        "stem_uri": str(path.resolve()), "stem_sha256": sha, "started_at": started,
        "finished_at": datetime.now(timezone.utc), "device": f"{s.device}@{socket.gethostname()}",
        "wall_s": wall, "batch_size": batch_size, "status": "current",
    }


# What a window's result carries (and its cache record keeps): ids, paths, hashes, no audio.
RESULT_FIELDS = ("id", "window_id", "order", "version", "prompt_text", "seed", "config_hash",
                 "stem_uri", "stem_sha256", "status")


class WindowsFailed(RuntimeError):
    """Windows of a batch failed (each named, with its reason); the others were generated.
    Not retried: a permanent cause fails the same way again."""


class WindowsFailedTransient(TransientError):
    """As :class:`WindowsFailed`, with at least one transient cause: the batch is retried (its
    finished windows then only read their tracks back)."""


def batch_result(states: list[WindowState]) -> list[dict[str, Any]]:
    """A batch's track refs (``RESULT_FIELDS``), or its failure: a batch of one raises the
    window's own error (as an unbatched window does); a larger one names every failed window
    with its reason."""
    failed = [w for w in states if w.error is not None]
    if len(states) == 1 and failed:
        raise failed[0].error  # type: ignore[misc]
    if failed:
        reasons = "; ".join(
            f"window {w.job['scene_index']}.{w.job['window_index']}: "
            f"{type(w.error).__name__}: {' '.join(str(w.error).split())[:300]}" for w in failed)
        transient = any(is_transient(w.error) for w in failed if w.error is not None)
        cls = WindowsFailedTransient if transient else WindowsFailed
        raise cls(f"{len(failed)} of {len(states)} windows failed "
                  f"({len(states) - len(failed)} generated): {reasons}")
    return [{k: row.get(k) for k in RESULT_FIELDS} for w in states for row in w.rows]


def run_windows(jobs: list[dict[str, Any]], settings: dict[str, Any],
                label: str = "") -> list[dict[str, Any]]:
    """``generate_windows`` on JSON settings, in this process (the embedded run's batches);
    ``label`` only names the task run."""
    return batch_result(generate_windows(jobs, settings_from_json(settings)))


def run_window(job: dict[str, Any], settings: dict[str, Any]) -> list[dict[str, Any]]:
    """``generate_window`` on JSON settings; the result keeps only ``RESULT_FIELDS``."""
    rows = generate_window(job, settings_from_json(settings))
    return [{k: row.get(k) for k in RESULT_FIELDS} for row in rows]
