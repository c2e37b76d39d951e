"""Regenerate (or delete) one track of a scene: the operator's review loop.

Track k of scene s is regenerated in every window of the scene, against the audio that will
sit beside it in the mix: the window's original audio plus all *other* current tracks
(orders ≠ k), i.e. x̃ = a_0 + Σ_{j≠k} track_j. The new take is a new version of the same
(scene, order); the previous version is kept with status ``superseded`` (``deleted`` for
``--delete``), so the history stays listable. The caller then re-mixes and re-muxes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from models.generation.guidance_settings import GuidanceError, check_seed
from sql.repository import current_tracks, find_asset, set_track_status, shot_windows, upsert_track
from tasks.audio_files import fit_length
from tasks.config import Settings, SettingError
from tasks.generate import generate_take, load_bundle, read_stem, record_bundle, window_inputs
from tasks.library_fs import local_path
from tasks.runs import session
from tasks.seeds import derive_seed


MAX_PROMPT_CHARS = 1000


class NotFound(LookupError):
    """The asset, scene or track the operator named does not exist."""


def resolve_asset(ref: str, settings: Settings) -> dict[str, Any]:
    """An asset by numeric id or by (a unique prefix of) its sha256."""
    with session(settings) as s:
        row = find_asset(s, ref)
    if row is None:
        raise NotFound(f"no asset {ref!r} (give an id or a sha256 prefix)")
    return row


@dataclass(frozen=True)
class Take:
    """What the operator asked of a new take, checked: its settings (β replaced) and values."""

    settings: Settings
    prompt: str | None
    seed: int | None
    beta: float | None


def check_take(settings: Settings, *, prompt: Any = None, seed: Any = None,
               beta: Any = None) -> Take:
    """The operator's prompt, seed and β for a new take, checked before anything is read or
    written (SettingError naming the field otherwise); empty text counts as not given."""
    if prompt is not None and (not isinstance(prompt, str) or len(prompt) > MAX_PROMPT_CHARS):
        raise SettingError("prompt", f"prompt must be text of at most {MAX_PROMPT_CHARS} characters, "
                                     f"got {str(prompt)[:40]!r}")
    try:
        seed = None if seed in (None, "") else check_seed(seed)
    except GuidanceError as exc:
        raise SettingError("seed", str(exc)) from None
    take_settings = settings if beta in (None, "") else replace(settings, beta=beta)
    return Take(take_settings, prompt or None, seed,
                None if beta in (None, "") else take_settings.beta)


def regenerate(asset_ref: str, scene_index: int, order: int, settings: Settings, *,
               prompt: str | None = None, seed: int | None = None, beta: float | None = None,
               delete: bool = False) -> dict[str, Any]:
    """New version of track ``order`` in each window of shot ``scene_index``; returns rows."""
    take = check_take(settings, prompt=prompt, seed=seed, beta=beta)
    asset = resolve_asset(asset_ref, settings)
    with session(settings) as s:
        windows = shot_windows(s, asset["id"], scene_index)
    if not windows:
        raise NotFound(f"asset {asset['id']} has no scene {scene_index}")
    changed: list[dict[str, Any]] = []
    for w in windows:
        with session(settings) as s:
            tracks = {t["order"]: t for t in current_tracks(s, w["id"])}
        old = tracks.get(order)
        if old is None:
            raise NotFound(f"scene {scene_index} window {w['window_index']} has no track {order}")
        if delete:
            with session(settings) as s:
                set_track_status(s, old["id"], "deleted")
            changed.append({**old, "status": "deleted"})
            continue
        changed.append(_regenerate_window(asset, w, old, tracks, take.settings, take.prompt, take.seed))
        with session(settings) as s:
            record_bundle(s, load_bundle(str(take.settings.bundle), take.settings.device,
                                         take.settings.threads))
            set_track_status(s, old["id"], "superseded")
            changed[-1]["id"] = upsert_track(s, **{k: v for k, v in changed[-1].items() if k != "id"})
    return {"asset_id": asset["id"], "scene": scene_index, "track": order, "tracks": changed}


def _regenerate_window(asset: dict[str, Any], window: dict[str, Any], old: dict[str, Any],
                       tracks: dict[int, dict[str, Any]], take_settings: Settings,
                       prompt: str | None, seed: int | None) -> dict[str, Any]:
    bundle = load_bundle(str(take_settings.bundle), take_settings.device, take_settings.threads)
    job = {"asset_sha256": asset["sha256"], "window_id": window["id"],
           "path": local_path(asset["uri"], asset["sha256"], take_settings.data_dir),
           "scene_index": window["shot_index"], "window_index": window["window_index"],
           "start_s": window["start_s"], "end_s": window["end_s"]}
    duration = float(window["end_s"]) - float(window["start_s"])
    n = int(round(duration * bundle.sample_rate))
    video, original = window_inputs(job, bundle)
    negatives = fit_length(original, n) if original is not None else np.zeros(n, np.float32)
    others = []
    for o, t in sorted(tracks.items()):
        if o == old["order"]:
            continue
        wave = read_stem(Path(t["stem_uri"]), t["stem_sha256"], n)
        if wave is not None:
            negatives += wave
            others.append(t["prompt_text"])
    has_negative = original is not None or bool(others)
    text = prompt or old["prompt_text"]
    version = int(old["version"]) + 1
    config_hash = take_settings.generation_hash()
    track_seed = seed if seed is not None else derive_seed(
        asset["sha256"], window["shot_index"], window["window_index"], old["order"], text,
        config_hash, take_settings.seed + version)
    return generate_take(bundle, take_settings, job, video, text=text, order=old["order"],
                         version=version, seed=track_seed,
                         negative=negatives if has_negative else None, earlier_prompts=others,
                         config_hash=config_hash, prompt_id=old.get("prompt_id"))
