"""A bundle's declared NAG β (models/generation/bundle_beta.py): read for the branch the bundle
holds, ignored for another, refused when broken; an explicit β wins everywhere (settings, the
pipeline, the provenance of a generated track)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from models.demo_family.codec import MelCodec
from models.demo_family.features import TextEncoder, VideoFeatures, build_tokenizer
from models.generation.bundle import load_bundle
from models.generation.bundle_beta import (
    DECLARATION,
    branch_sha256,
    declared_beta,
    resolve_beta,
)
from models.generation.controlnet import AudioControlNet
from models.generation.guidance_settings import GuidanceError
from models.generation.mmaudio import MMAudio
from models.generation.pipeline import StepByStepV2APipeline
from tasks.config import ConfigError, load_settings, settings_from_json
from tests.models.helpers import randomize, single_thread  # noqa: F401  (autouse fixture)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    net = randomize(MMAudio.from_preset("tiny"), 1, gain=0.7)
    cn = randomize(AudioControlNet.from_transformer(net), 2, gain=0.7)
    pipe = StepByStepV2APipeline(transformer=net, controlnet=cn, codec=MelCodec(griffin_lim_iters=2),
                                 video_features=VideoFeatures(), text_encoder=TextEncoder(),
                                 tokenizer=build_tokenizer(["a dog barks", "rain falls"], max_length=16))
    out = tmp_path_factory.mktemp("bundle") / "declared"
    pipe.save_pretrained(out)
    (out / DECLARATION).write_text(json.dumps({"beta": 0.75, "controlnet_sha256": branch_sha256(out)}))
    return out


def _copy(bundle: Path, tmp_path: Path, record: object | None) -> Path:
    out = tmp_path / "b"
    shutil.copytree(bundle, out)
    if record is None:
        (out / DECLARATION).unlink()
    else:
        (out / DECLARATION).write_text(record if isinstance(record, str) else json.dumps(record))
    return out


def test_the_declaration_counts_only_for_the_branch_it_was_measured_on(bundle: Path, tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    assert declared_beta(bundle) == 0.75
    assert resolve_beta(None, bundle) == 0.75 and resolve_beta(2, bundle) == 2.0 and resolve_beta(0, bundle) == 0.0
    # no declaration: the paper's β
    assert declared_beta(_copy(bundle, tmp_path / "none", None)) is None
    assert resolve_beta(None, tmp_path / "none" / "b") == 1.5
    # a declaration without a branch hash applies to whatever branch is there
    assert declared_beta(_copy(bundle, tmp_path / "free", {"beta": 1})) == 1.0
    # the branch retrained in place: the β was measured on weights that are gone
    other = _copy(bundle, tmp_path / "retrained", {"beta": 0.75, "controlnet_sha256": branch_sha256(bundle)})
    weights = other / "controlnet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")
    with caplog.at_level(logging.WARNING, logger="stepfoley.bundle_beta"):
        assert declared_beta(other) is None and resolve_beta(None, other) == 1.5
    assert "ignoring" in caplog.text and "0.75" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="stepfoley.bundle_beta"):
        assert declared_beta(other) is None  # asked again (every Settings does): warned once
    assert "ignoring" not in caplog.text


@pytest.mark.parametrize("record, words", [("{not json", "is not a"), ({"b": 1}, "is not a"),
                                           ({"beta": -1}, "must be a finite number"),
                                           ({"beta": "NaN"}, "must be a finite number"),
                                           ({"beta": True}, "must be a number")])
def test_a_broken_declaration_is_refused_naming_the_file(bundle: Path, tmp_path: Path, record: object,
                                                         words: str) -> None:
    bad = _copy(bundle, tmp_path, record)
    with pytest.raises(GuidanceError, match=words) as err:
        declared_beta(bad)
    assert str(bad / DECLARATION) in str(err.value)
    with pytest.raises(ConfigError, match="beta"):  # a run refuses it up front, naming the setting
        load_settings({"bundle": bad})


def test_settings_resolve_the_declared_beta_and_hash_it(bundle: Path, tmp_path: Path) -> None:
    s = load_settings({"bundle": bundle})
    assert s.beta is None and s.nag_beta == 0.75 == s.guidance.beta == s.generation_config()["beta"]
    explicit = load_settings({"bundle": bundle, "beta": 1.5})
    assert explicit.nag_beta == 1.5 and explicit.generation_hash() != s.generation_hash()
    assert load_settings({"bundle": bundle}, environ={"STEPFOLEY_BETA": "2"}).nag_beta == 2.0
    # a flow's JSON keeps "not given", so the worker resolves it against the same bundle
    again = settings_from_json(s.to_json())
    assert again.beta is None and again.nag_beta == 0.75 and again.generation_hash() == s.generation_hash()
    plain = _copy(bundle, tmp_path, None)
    assert load_settings({"bundle": plain}).nag_beta == 1.5
    assert load_settings({"bundle": plain}).generation_hash() == explicit.generation_hash()


def test_the_pipeline_generates_with_the_declared_beta(bundle: Path, tmp_path: Path) -> None:
    pipe = load_bundle(bundle)
    pipe.set_progress_bar_config(disable=True)
    rng = np.random.default_rng(0)
    video = {"clip": rng.integers(0, 256, (32, 64, 64, 3), dtype=np.uint8),
             "sync": rng.integers(0, 256, (100, 64, 64, 3), dtype=np.uint8)}
    neg = rng.standard_normal(4 * 16000).astype(np.float32) * 0.1
    assert pipe.default_beta == 0.75
    dflt = pipe.generate_track(video, 4.0, "rain falls", negative_audio=neg, num_inference_steps=2, seed=3)
    same = pipe.generate_track(video, 4.0, "rain falls", negative_audio=neg, num_inference_steps=2, seed=3,
                               beta=0.75)
    paper = pipe.generate_track(video, 4.0, "rain falls", negative_audio=neg, num_inference_steps=2, seed=3,
                                beta=1.5)
    assert dflt.settings["beta"] == 0.75 and paper.settings["beta"] == 1.5
    assert torch.equal(dflt.latent, same.latent) and not torch.equal(dflt.latent, paper.latent)
    assert load_bundle(_copy(bundle, tmp_path, None)).default_beta == 1.5
