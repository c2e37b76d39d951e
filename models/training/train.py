"""`stepfoley train COMPONENT`: the parts of the shipped default bundle trained in order (or one
of them), resumable, and the bundle assembled from them.

``all`` = base network (models/training/bundle_recipes.py) → guidance branch (same module and
models/training/guidance.py) → ``model_index.json`` → captioner (captioner_train.py) → scorer
(scorer_train.py) → evaluator (models/evaluation/evaluator.py). A ``--minutes`` cap for
``all`` gives the base 62 % and the guidance branch 22 % of it (their shares of an uncapped
run on the 2-core box: 4500 and 3000 steps, ≈ 44 and 15 of ≈ 72 min). Each run's summary goes to
``OUT/_runs/train_COMPONENT.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from transformers import PreTrainedTokenizerFast

from models.demo_family.codec import MelCodec
from models.demo_family.features import TextEncoder, VideoFeatures
from models.evaluation.evaluator import train_evaluator
from models.generation.controlnet import AudioControlNet
from models.generation.mmaudio import MMAudio
from models.generation.pipeline import StepByStepV2APipeline
from models.training.bundle_recipes import BASE_STEPS, GUIDANCE_STEPS, train_base, train_guidance
from models.training.captioner_train import train_captioner
from models.training.scorer_train import train_scorer

BUNDLE_NAME = "foleyworld-tiny"
DEFAULT_BUNDLE_DIR = Path(__file__).resolve().parents[1] / "weights" / BUNDLE_NAME


def assemble_bundle(out: Path) -> Path:
    """Write model_index.json for the StepByStepV2APipeline layout from the trained parts."""
    out = Path(out)
    pipe = StepByStepV2APipeline(
        transformer=MMAudio.from_pretrained(out / "transformer"),
        controlnet=AudioControlNet.from_pretrained(out / "controlnet"),
        codec=MelCodec.from_pretrained(out / "codec"),
        video_features=VideoFeatures.from_pretrained(out / "video_features"),
        text_encoder=TextEncoder.from_pretrained(out / "text_encoder"),
        tokenizer=PreTrainedTokenizerFast.from_pretrained(out / "tokenizer"))
    pipe.save_pretrained(out)
    return out


def to_half(out: Path, components: tuple[str, ...] = ("transformer", "controlnet")) -> None:
    """Store the large weights of ``components`` in bfloat16 (they load back as float32 via
    torch_dtype): the two networks, 21 of the bundle's 22 MB; the small text encoder and video
    features stay float32."""
    for f in (Path(out) / c / "diffusion_pytorch_model.safetensors" for c in components):
        if not f.is_file():
            continue
        sd = load_file(f)
        save_file({k: (v.to(torch.bfloat16) if v.is_floating_point() and v.numel() > 4096 else v)
                   for k, v in sd.items()}, f)


def train_component(component: str, out: Path, *, seed: int = 0, threads: int = 1,
                    steps: int | None = None, minutes: float | None = None, quiet: bool = False,
                    recipe: dict[str, Any] | None = None) -> dict[str, Any]:
    """`stepfoley train COMPONENT`: one part of the bundle (or `all`), resumable. ``recipe``
    overrides the shipped recipe's choices: ``base_t_mean``, ``guidance_t_mean``,
    ``pooled_cond`` (bundle_recipes.py's constants are the defaults)."""
    recipe = recipe or {}
    base_kw = {"t_mean": recipe["base_t_mean"]} if recipe.get("base_t_mean") is not None else {}
    guid_kw = {k: recipe[r] for k, r in (("t_mean", "guidance_t_mean"), ("pooled_cond", "pooled_cond"))
               if recipe.get(r) is not None}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(threads)
    results: dict[str, Any] = {}
    t0 = time.time()
    if component in ("base", "all"):
        results["base"] = train_base(out, seed=seed, threads=threads, steps=steps or BASE_STEPS,
                                     minutes=(minutes * 0.62 if minutes and component == "all" else minutes),
                                     quiet=quiet, **base_kw)
    if component in ("guidance", "all"):
        results["guidance"] = train_guidance(out, seed=seed, threads=threads, steps=steps or GUIDANCE_STEPS,
                                             minutes=(minutes * 0.22 if minutes and component == "all" else minutes),
                                             quiet=quiet, **guid_kw)
    if component in ("base", "guidance", "all") and (out / "controlnet").is_dir() and (out / "transformer").is_dir():
        assemble_bundle(out)
    if component in ("captioner", "all"):
        results["captioner"] = train_captioner(out / "captioner", **_kw(steps, seed, threads, component))
    if component in ("scorer", "all"):
        results["scorer"] = train_scorer(out / "scorer", **_kw(steps, seed, threads, component))
    if component in ("evaluator", "all"):
        results["evaluator"] = train_evaluator(out / "evaluator", **_kw(steps, seed, threads, component))
    results["wall_s"] = round(time.time() - t0, 1)
    (out / "_runs").mkdir(exist_ok=True)
    (out / "_runs" / f"train_{component}.json").write_text(json.dumps(results, indent=2, default=str))
    return results


def _kw(steps: int | None, seed: int, threads: int, component: str) -> dict[str, Any]:
    kw: dict[str, Any] = {"seed": seed, "threads": threads}
    if steps is not None and component != "all":
        kw["steps"] = steps
    return kw
