"""Track k of B windows in one batched ODE equals B unbatched tracks at real small_16k size
(random weights): the tolerance of test_batched_generation.py holds when the matmuls are
448-wide and 12 blocks deep, not only at the tiny preset. Null video (the CLIP image tower
on 64 frames would take minutes on this CPU; the video features are per window, outside the
batched ODE), real-size text encoder and 16 kHz codec, 1-s windows, 2 Euler steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.generation.batched import TrackRequest, generate_tracks_batched
from models.generation.controlnet import AudioControlNet
from models.generation.mmaudio import MMAudio
from models.generation.pipeline import StepByStepV2APipeline
from models.mmaudio_family.codec import MMAudioCodec
from models.mmaudio_family.text_encoder import ClipTextEncoder
from models.mmaudio_family.video_features import MMAudioVideoFeatures
from tests.models.helpers import randomize

pytestmark = pytest.mark.heavy


@pytest.fixture(scope="module")
def pipe() -> StepByStepV2APipeline:
    torch.manual_seed(0)
    net = randomize(MMAudio.from_preset("small_16k"), 1).eval()
    cn = randomize(AudioControlNet.from_transformer(net), 2).eval()
    # Never run with a null video; built on the meta device for its frame specs and lengths only.
    with torch.device("meta"):
        vf = MMAudioVideoFeatures()
    return StepByStepV2APipeline(transformer=net, controlnet=cn, codec=MMAudioCodec(mode="16k").eval(),
                                 video_features=vf, text_encoder=ClipTextEncoder().eval(), tokenizer=None)


def test_batched_tracks_equal_unbatched_at_small_16k(pipe: StepByStepV2APipeline) -> None:
    sr = pipe.codec.sample_rate
    rng = np.random.default_rng(11)
    reqs = [TrackRequest(None, 1.0, p, (0.1 * rng.standard_normal(sr)).astype(np.float32),
                         seed=200 + i, alpha=4.5, beta=1.5, steps=2)
            for i, p in enumerate(["rain falls on a tin roof", "a dog barks twice", "footsteps on gravel"])]
    batched = generate_tracks_batched(pipe, reqs)
    assert {b.settings["guidance"] for b in batched} == {"nag"}
    for r, b in zip(reqs, batched):
        one = pipe.generate_track(video=None, duration=r.duration, prompt=r.prompt, negative_audio=r.negative_audio,
                                  alpha=r.alpha, beta=r.beta, num_inference_steps=r.steps, seed=r.seed)
        assert b.latent.shape == one.latent.shape
        assert torch.allclose(b.latent, one.latent, atol=1e-4, rtol=1e-4), (b.latent - one.latent).abs().max()
        assert np.abs(b.waveform - one.waveform).max() < 1e-4
    # the rows are the windows' own: distinct prompts, negatives and seeds give distinct tracks
    assert (batched[0].latent - batched[1].latent).abs().max() > 1e-2
