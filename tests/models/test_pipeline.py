"""StepByStepV2APipeline on a tiny random bundle built from the real components."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models.generation.bundle import bundle_identity, load_bundle
from models.demo_family.codec import MelCodec
from models.generation.controlnet import AudioControlNet
from models.demo_family.features import TextEncoder, VideoFeatures, build_tokenizer
from models.generation.mmaudio import MMAudio
from models.generation.nag import nag_velocity
from models.generation.pipeline import StepByStepV2APipeline
from models.generation.sampling import euler_sample, initial_noise
from tests.models.helpers import randomize, single_thread  # noqa: F401  (autouse fixture)

PROMPTS = ["footsteps on gravel", "a dog barking", "rain on a roof"]
STEPS = 3


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    net = randomize(MMAudio.from_preset("tiny"), 1, gain=0.7)
    cn = randomize(AudioControlNet.from_transformer(net), 2, gain=0.7)
    tok = build_tokenizer(PROMPTS + ["wind"], max_length=16)
    pipe = StepByStepV2APipeline(transformer=net, controlnet=cn, codec=MelCodec(griffin_lim_iters=2),
                                 video_features=VideoFeatures(), text_encoder=TextEncoder(), tokenizer=tok)
    out = tmp_path_factory.mktemp("bundle") / "tiny-random"
    pipe.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def pipe(bundle_dir: Path) -> StepByStepV2APipeline:
    return load_bundle(bundle_dir)


def _video(duration: float, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"clip": rng.integers(0, 256, (int(8 * duration), 64, 64, 3), dtype=np.uint8),
            "sync": rng.integers(0, 256, (int(25 * duration), 64, 64, 3), dtype=np.uint8)}


def test_bundle_layout_and_identity(bundle_dir: Path, pipe) -> None:
    index = json.loads((bundle_dir / "model_index.json").read_text())
    assert index["transformer"] == ["models.generation.mmaudio", "MMAudio"]
    assert index["controlnet"] == ["models.generation.controlnet", "AudioControlNet"]
    ident = bundle_identity(bundle_dir)
    assert ident["bundle_id"].startswith("tiny-random@") and len(ident["weights_sha256"]) == 64
    assert "transformer/diffusion_pytorch_model.safetensors" in ident["weights"]
    assert bundle_identity(bundle_dir) == ident  # stable
    assert pipe.max_duration_s == pytest.approx(8.0)
    assert not pipe.transformer.training


def test_identity_changes_with_content(bundle_dir: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "tiny-random"
    shutil.copytree(bundle_dir, copy)
    a = bundle_identity(copy)
    assert a["content_sha256"] == bundle_identity(bundle_dir)["content_sha256"]  # location-independent
    (copy / "README.md").write_text("docs do not change identity")
    assert bundle_identity(copy)["content_sha256"] == a["content_sha256"]
    cfg = json.loads((copy / "codec" / "config.json").read_text())
    cfg["griffin_lim_iters"] = 3
    (copy / "codec" / "config.json").write_text(json.dumps(cfg))
    b = bundle_identity(copy)
    assert b["content_sha256"] != a["content_sha256"] and b["weights_sha256"] == a["weights_sha256"]


def test_hub_id_is_refused_with_layout() -> None:
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        StepByStepV2APipeline.from_pretrained("hkchengrex/MMAudio")


@pytest.mark.parametrize("duration", [4.0, 8.0])
@pytest.mark.parametrize("mode", ["nag", "independent", "negative_text"])
def test_three_tracks_deterministic(pipe, duration: float, mode: str) -> None:
    video = _video(duration)
    run = lambda: pipe(video=video, duration=duration, prompts=PROMPTS, mode=mode,  # noqa: E731
                       num_inference_steps=STEPS, generator=torch.Generator().manual_seed(42))
    a, b = run(), run()
    n = int(duration * 16000)
    assert a.sample_rate == 16000 and len(a.tracks) == 3
    for ta, tb in zip(a.tracks, b.tracks):
        assert ta.dtype == np.float32 and ta.shape == (n,) and np.isfinite(ta).all()
        assert np.array_equal(ta, tb)
    assert [s["order"] for s in a.settings] == [1, 2, 3]
    assert len({s["seed"] for s in a.settings}) == 3
    assert all(s["steps"] == STEPS and s["mode"] == mode and s["alpha"] == 4.5 for s in a.settings)
    first = a.settings[0]
    assert first["beta"] == 0.0 and first["guidance"] == "cfg" and first["negative_sources"] == []
    if mode == "nag":
        assert [s["beta"] for s in a.settings] == [0.0, 1.5, 1.5]
        assert a.settings[2]["negative_sources"] == ["track1", "track2"]
    elif mode == "negative_text":
        assert a.settings[2]["negative_sources"] == PROMPTS[:2] and a.settings[1]["guidance"] == "negative_text"
    else:
        assert all(s["negative_sources"] == [] and s["beta"] == 0.0 for s in a.settings)


def test_modes_agree_on_track_one_and_differ_after(pipe) -> None:
    video = _video(4.0, 1)
    outs = {m: pipe(video=video, duration=4.0, prompts=PROMPTS[:2], mode=m, num_inference_steps=STEPS,
                    seeds=[5, 6]) for m in ("nag", "independent", "negative_text")}
    # Track 1 has no negatives in any mode: plain CFG, bit-identical.
    assert np.array_equal(outs["nag"].tracks[0], outs["independent"].tracks[0])
    assert np.array_equal(outs["negative_text"].tracks[0], outs["independent"].tracks[0])
    assert not np.allclose(outs["nag"].tracks[1], outs["independent"].tracks[1])
    assert not np.allclose(outs["negative_text"].tracks[1], outs["independent"].tracks[1])


def test_negative_audio_makes_track_one_nag_and_settings_reproduce(pipe) -> None:
    video = _video(4.0, 2)
    neg = (0.1 * np.sin(np.arange(64000) * 2 * np.pi * 440 / 16000)).astype(np.float32)
    out = pipe(video=video, duration=4.0, prompts=PROMPTS[:2], negative_audio=neg, num_inference_steps=STEPS,
               generator=torch.Generator().manual_seed(3))
    s1, s2 = out.settings
    assert s1["beta"] == 1.5 and s1["negative_sources"] == ["negative_audio"]
    assert s2["negative_sources"] == ["negative_audio", "track1"]
    # A track is a pure function of its recorded settings + inputs (what `regenerate` relies on).
    again = pipe.generate_track(video, 4.0, s2["prompt"], negative_audio=neg + out.tracks[0], alpha=s2["alpha"],
                                beta=s2["beta"], num_inference_steps=s2["steps"], mode=s2["mode"], seed=s2["seed"])
    assert np.array_equal(again.waveform, out.tracks[1])


def test_odd_duration_is_padded_and_cropped(pipe) -> None:
    out = pipe(video=_video(2.5), duration=2.5, prompts=PROMPTS[:1], num_inference_steps=2, seeds=[0])
    assert out.tracks[0].shape == (40000,)
    assert out.settings[0]["model_duration_s"] == pytest.approx(8 / 3)
    with pytest.raises(ValueError):
        pipe(video=None, duration=9.0, prompts=PROMPTS[:1], seeds=[0])
    with pytest.raises(ValueError):
        pipe(video=None, duration=4.0, prompts=PROMPTS[:1])  # no seed, no generator


def test_batched_step_equals_three_separate_forwards(pipe) -> None:
    tr, cn = pipe.transformer, pipe.controlnet
    clip_f, sync_f = pipe.encode_video(_video(4.0, 4), 4.0)
    text_f = pipe.encode_text([PROMPTS[1]])
    neg = pipe.encode_audio(np.random.default_rng(0).standard_normal(64000).astype(np.float32) * 0.1, 4.0)
    n = neg.shape[1]
    got = pipe.generate_latent(clip_f, sync_f, text_f, n, torch.Generator().manual_seed(1), 4.5, 1.5, STEPS, neg)
    with torch.no_grad():
        cond = tr.preprocess_conditions(clip_f, sync_f, text_f, n)
        null = tr.get_empty_conditions(1, latent_len=n, clip_len=clip_f.shape[1], sync_len=sync_f.shape[1])
        psi = tr.preprocess_conditions(clip_f, sync_f, tr.empty_string_feat[None], n)

        def fn(t, x):
            t1 = t.expand(1)
            return nag_velocity(tr.predict_flow(x, t1, null), tr.predict_flow(x, t1, cond),
                                cn.predict_flow(tr, x, t1, psi, neg), 4.5, 1.5)

        ref = euler_sample(fn, initial_noise(got.shape, torch.Generator().manual_seed(1)), STEPS)
        cfg = pipe.generate_latent(clip_f, sync_f, text_f, n, torch.Generator().manual_seed(1), 4.5, 0.0, STEPS)
    assert (got - ref).abs().max() < 1e-4
    assert (got - cfg).abs().max() > 1e-3  # the branch really acts


def test_bundle_without_controlnet(tmp_path: Path) -> None:
    net = randomize(MMAudio.from_preset("tiny"), 1, gain=0.7)
    pipe = StepByStepV2APipeline(transformer=net, controlnet=None, codec=MelCodec(griffin_lim_iters=2),
                                 video_features=VideoFeatures(), text_encoder=TextEncoder(),
                                 tokenizer=build_tokenizer(PROMPTS))
    pipe.save_pretrained(tmp_path / "b")
    loaded = StepByStepV2APipeline.from_pretrained(tmp_path / "b")
    assert loaded.controlnet is None
    out = loaded(video=None, duration=2.0, prompts=PROMPTS[:2], mode="negative_text", num_inference_steps=2, seeds=[1, 2])
    assert [t.shape for t in out.tracks] == [(32000,), (32000,)]
    with pytest.raises(ValueError, match="no controlnet"):
        loaded(video=None, duration=2.0, prompts=PROMPTS[:2], mode="nag", num_inference_steps=2, seeds=[1, 2])
