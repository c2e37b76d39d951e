"""Salience with an MMAudio-family bundle uses the bundle's own CLIP: a tiny official release is
converted, and the scorer's numbers are recomputed from the release's open_clip file through
the independent ``OpenClip`` path (encode_image / encode_text_pooled)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.generation.convert import convert_release
from models.mmaudio_family.clip import OpenClip
from models.mmaudio_family.tokenizer import default_tokenizer
from models.mmaudio_family.video_preprocess import clip_pixels
from models.prompting.bundle_clip_scorer import BundleClipScorer, clip_image_size, is_mmaudio_bundle
from models.prompting.captioner import keyframes
from models.prompting.scorer import load_scorer
from tests.models.helpers import single_thread  # noqa: F401  (autouse)
from tests.models.mmaudio_family.release_helpers import build_tiny_release

BUNDLE_DEMO = Path(__file__).resolve().parents[2] / "models" / "weights" / "foleyworld-tiny"


@pytest.fixture(scope="module")
def release_and_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("release")
    sizes = json.loads(build_tiny_release(root).read_text())
    return root, convert_release(root, "small_16k", tmp_path_factory.mktemp("out") / "mm", overrides=sizes)


def test_scores_are_the_bundles_clip(release_and_bundle: tuple[Path, Path]) -> None:
    root, bundle = release_and_bundle
    assert is_mmaudio_bundle(bundle) and not is_mmaudio_bundle(BUNDLE_DEMO)
    assert clip_image_size(bundle) == 384 and clip_image_size(BUNDLE_DEMO) is None
    scorer = load_scorer(bundle)
    assert isinstance(scorer, BundleClipScorer) and scorer.name.startswith("mmaudio-clip:")
    frames = np.random.default_rng(3).integers(0, 255, (12, 48, 64, 3), dtype=np.uint8)
    prompts = ["a bicycle bell rings", "traffic hums", "a dog barks"]
    got = torch.tensor(scorer.score(frames, prompts))

    clip_dir = root / "DFN5B-CLIP-ViT-H-14-384"
    cfg = json.loads((clip_dir / "open_clip_config.json").read_text())["model_cfg"]
    clip = OpenClip.from_official(clip_dir / "open_clip_pytorch_model.bin", cfg)
    img = clip.encode_image(clip.standardize(clip_pixels(keyframes(frames, 4), 384)))
    v = F.normalize(img.mean(0), dim=-1)
    t = clip.encode_text_pooled(default_tokenizer()(prompts))
    want = t @ v
    assert torch.allclose(got, want, atol=1e-5), (got, want)
    assert len(set(np.round(got.numpy(), 6))) == 3  # prompts are told apart: ordering is meaningful
