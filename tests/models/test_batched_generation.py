"""Track k of B windows in one batched ODE (models/generation/batched.py) equals B unbatched
tracks: same seeds per window, same audio within float tolerance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.demo_family.codec import MelCodec
from models.demo_family.features import TextEncoder, VideoFeatures, build_tokenizer
from models.generation.batched import TrackRequest, generate_tracks_batched
from models.generation.controlnet import AudioControlNet
from models.generation.mmaudio import MMAudio
from models.generation.pipeline import StepByStepV2APipeline
from tests.models.helpers import randomize


@pytest.fixture(scope="module")
def pipe() -> StepByStepV2APipeline:
    torch.manual_seed(0)
    net = randomize(MMAudio.from_preset("tiny"), 1, gain=0.7)
    cn = randomize(AudioControlNet.from_transformer(net), 2, gain=0.7)
    tok = build_tokenizer(["a dog barks", "rain falls", "footsteps", "wind"], max_length=16)
    return StepByStepV2APipeline(transformer=net, controlnet=cn, codec=MelCodec(griffin_lim_iters=4),
                                 video_features=VideoFeatures(), text_encoder=TextEncoder(),
                                 tokenizer=tok).to(torch.device("cpu"))


def _video(pipe: StepByStepV2APipeline, seed: int, duration: float) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for name, spec in pipe.video_features.frame_specs().items():
        n = int(round(duration * spec.fps))
        out[name] = rng.integers(0, 255, (n, spec.size, spec.size, 3), dtype=np.uint8)
    return out


def test_batched_tracks_equal_unbatched(pipe: StepByStepV2APipeline) -> None:
    sr = pipe.codec.sample_rate
    rng = np.random.default_rng(3)
    reqs = [
        # three NAG tracks of windows of one length (one batch of 3 × 3 rows) ...
        *(TrackRequest(_video(pipe, s, 8.0), 8.0, p, (0.1 * rng.standard_normal(8 * sr)).astype(np.float32),
                       seed=100 + s, alpha=4.5, beta=1.5, steps=3)
          for s, p in ((1, "rain falls"), (2, "a dog barks"), (3, "wind"))),
        # ... a first track (CFG, nothing to avoid yet) and a shorter window: their own batches
        TrackRequest(_video(pipe, 4, 8.0), 8.0, "footsteps", None, seed=7, alpha=4.5, beta=1.5, steps=3),
        TrackRequest(_video(pipe, 5, 5.0), 5.0, "wind", (0.1 * rng.standard_normal(5 * sr)).astype(np.float32),
                     seed=9, alpha=4.5, beta=1.5, steps=3),
    ]
    batched = generate_tracks_batched(pipe, reqs)
    for r, b in zip(reqs, batched):
        one = pipe.generate_track(video=r.video, duration=r.duration, prompt=r.prompt,
                                  negative_audio=r.negative_audio, alpha=r.alpha, beta=r.beta,
                                  num_inference_steps=r.steps, mode=r.mode, seed=r.seed)
        assert b.waveform.shape == one.waveform.shape
        assert torch.allclose(b.latent, one.latent, atol=1e-5, rtol=1e-4), (b.latent - one.latent).abs().max()
        assert np.abs(b.waveform - one.waveform).max() < 1e-4
    # the seed is the window's own: another window's seed gives another track
    swapped = generate_tracks_batched(pipe, [TrackRequest(**{**reqs[0].__dict__, "seed": reqs[1].seed})])
    assert not torch.allclose(swapped[0].latent, batched[0].latent, atol=1e-3)
