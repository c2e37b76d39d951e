"""Prompts for every shot of an asset: keyframes + original audio + user prompts → ScenePrompts.

One list per shot (its windows share it, so a long shot keeps its sounds). Keyframes are read
at 4 frames/s at the captioner's working size; the shot's original audio (if any) lets the
stage drop prompts the footage already sounds like. The captioner seed is derived from the
asset hash and shot index, so prompts are reproducible.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from models.prompting.bundle_clip_scorer import clip_image_size, is_mmaudio_bundle
from models.prompting.captioner import Caption
from tasks.audio import original_audio
from tasks.config import ConfigError, Settings
from tasks.frames import read_frames
from tasks.media_paths import from_uri
from tasks.shot_prompts import ScenePrompts, finish_scene_prompts, load_scene_scorer, read_prompts_csv, \
    read_sidecar, scene_prompts, user_prompts_for_scene
from tasks.seeds import derive_seed

KEYFRAME_FPS = 4.0
KEYFRAME_SIZE = 64
AUDIO_RATE = 16000


@functools.lru_cache(maxsize=4)
def _csv_rows(path: str) -> tuple[Any, ...]:
    return tuple(read_prompts_csv(path))


def prompt_model_dirs(settings: Settings) -> tuple[Path | None, Path | None]:
    """(captioner, scorer) directories a run's prompts stage loads: ``--captioner`` or the
    bundle's captioner/; the demo bundle's scorer/, else an MMAudio-family bundle's own CLIP."""
    bundle = Path(settings.bundle)
    captioner = settings.captioner or (bundle if (bundle / "captioner").is_dir() else None)
    scorer = bundle if (bundle / "scorer").is_dir() or is_mmaudio_bundle(bundle) else None
    return (Path(captioner) if captioner else None), scorer


def prompts_for_asset(path: str, sha256: str, windows: list[dict[str, Any]],
                      settings: Settings) -> dict[int, ScenePrompts]:
    """ScenePrompts per shot index."""
    fs_path = from_uri(path)
    if settings.device == "cpu":
        import torch

        torch.set_num_threads(max(1, settings.threads))
    from transformers.utils import logging as tlogging

    tlogging.disable_progress_bar()
    tlogging.set_verbosity_error()
    rows = list(_csv_rows(str(settings.prompts_csv))) if settings.prompts_csv else []
    rows += read_sidecar(fs_path)
    bundle = Path(settings.bundle)
    captioner_dir, scorer_dir = prompt_model_dirs(settings)
    if captioner_dir is None and not rows:
        raise ConfigError(f"bundle {bundle} has no captioner/, no --captioner was given and no user "
                          "prompts were given (--prompts FILE.csv or a <video>.prompts.txt sidecar)")
    keyframe_size = max(KEYFRAME_SIZE, clip_image_size(bundle) or 0)
    shots: dict[int, tuple[float, float]] = {}
    for w in windows:
        shots.setdefault(w["scene_index"], (w["shot_start_s"], w["shot_end_s"]))
    out: dict[int, ScenePrompts] = {}
    for idx, (a, b) in sorted(shots.items()):
        frames = read_frames(fs_path, a, b, {"fps": KEYFRAME_FPS, "size": keyframe_size, "crop": "resize"})
        audio = original_audio(fs_path, a, b, AUDIO_RATE)
        users = user_prompts_for_scene(rows, fs_path, sha256, a, b)
        seed = derive_seed(sha256, idx, 0, 0, "captioner", settings.generation_hash(), settings.seed)
        if captioner_dir is None:
            out[idx] = finish_scene_prompts(Caption([], "", [], {"backend": "none"}), frames,
                                            k=settings.tracks, user_prompts=users, mode="replace",
                                            scorer=load_scene_scorer(str(scorer_dir), settings.device)
                                            if scorer_dir else None)
            continue
        out[idx] = scene_prompts(frames, str(captioner_dir), scorer_dir,
                                 k=settings.tracks, seed=seed % (2**31), original_audio=audio,
                                 sample_rate=AUDIO_RATE, user_prompts=users,
                                 mode=settings.prompts_mode, device=settings.device)
    return out
