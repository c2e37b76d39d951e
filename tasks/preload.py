"""Loading the run's models ahead of the stages that use them, on a helper thread.

The CLI starts ``start_preload`` right after it has forked the local Prefect API server
(flows/prefect_api.py): loading the bundle, captioner and scorer takes ~1–1.5 s
that would otherwise sit on the run's critical path. On the thread it overlaps the server's
start, the flow run's creation and the first asset's probe, hashing and shot detection
(ffmpeg subprocesses: the main thread waits on pipes, not on the GIL). The loaders are the
stages' own per-process caches (tasks/model_cache.py: one load per key, a second caller
waits for it), called with the very arguments the stages use, so the stages find the models
loaded or wait for the load in progress. Nothing here may fail a run: an error is left for the
stage, which loads again and reports it (with its retry policy) as it always did.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import torch
from transformers.utils import logging as tlogging

from tasks.asset_prompts import prompt_model_dirs
from tasks.config import Settings
from tasks.generate import load_bundle
from tasks.shot_prompts import load_prompt_models

log = logging.getLogger("stepfoley.preload")


def start_preload(settings: Settings) -> threading.Thread:
    """``preload_models`` on a daemon thread, started; join it or let the process end."""
    thread = threading.Thread(target=preload_models, args=(settings,), daemon=True,
                              name="stepfoley-preload")
    thread.start()
    return thread


def preload_models(settings: Settings) -> None:
    """Load what the prompt and generation stages of this process will load."""
    captioner, scorer = prompt_model_dirs(settings)
    try:
        if captioner is not None:
            _preload_prompt_models(settings, captioner, scorer)
        if not settings.gpu_deployment:  # otherwise the windows are generated elsewhere
            load_bundle(str(settings.bundle), settings.device, settings.threads)
    except Exception as exc:  # the stage reports it
        log.debug("preloading models failed: %s", exc)


def _preload_prompt_models(settings: Settings, captioner: Path, scorer: Path | None) -> None:
    # As tasks/asset_prompts.py sets up before its first scene_prompts call.
    if settings.device == "cpu":
        torch.set_num_threads(max(1, settings.threads))
    tlogging.disable_progress_bar()
    tlogging.set_verbosity_error()
    # Not the audio taggers: they judge an audible original soundtrack only, which archive
    # footage mostly lacks; the first asset that has one loads them (tasks/shot_prompts.py).
    load_prompt_models(str(captioner), str(scorer) if scorer else None, settings.device)
