"""The bf16 path (what runs on CUDA by default) against float32, on the CPU, with an MMAudio-family
bundle converted from the tiny official-format release.

Documented tolerance (relative L2 error, ‖bf16 − fp32‖ / ‖fp32‖): ≤ 3e-2 for the clip, sync and
text features and for the generated latent after 4 Euler steps (measured 0.5–1.2e-2: bf16 keeps
8 mantissa bits, ~4e-3 per rounding, accumulated over the towers and the steps); the waveform,
decoded in float32 from that latent, ≤ 3e-2 as well (measured 1e-3)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models.generation.bundle import load_bundle, resolve_dtype
from models.generation.convert import convert_release
from tests.models.helpers import single_thread  # noqa: F401  (autouse)
from tests.models.mmaudio_family.release_helpers import build_tiny_release

REL_TOL = 3e-2


def _rel(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
    return float((a - b).norm() / b.norm())


def test_resolve_dtype() -> None:
    assert resolve_dtype("cuda") == torch.bfloat16 and resolve_dtype("cuda:1") == torch.bfloat16
    assert resolve_dtype("cpu") == torch.float32 and resolve_dtype("cpu", "bfloat16") == torch.bfloat16
    with pytest.raises(ValueError, match="dtype must be one of"):
        resolve_dtype("cpu", "fp8")


def test_bf16_matches_fp32_within_tolerance(tmp_path: Path) -> None:
    sizes = build_tiny_release(tmp_path / "rel")
    bundle = convert_release(tmp_path / "rel", "small_16k", tmp_path / "b", overrides=json.loads(sizes.read_text()))
    rng = np.random.default_rng(0)
    video = {"clip": rng.integers(0, 255, (8, 384, 384, 3), dtype=np.uint8),
             "sync": rng.integers(0, 255, (25, 224, 224, 3), dtype=np.uint8)}
    got = {}
    for dtype in ("float32", "bfloat16"):
        pipe = load_bundle(bundle, "cpu", dtype)
        assert pipe.codec.vae.dtype == torch.float32  # the codec always decodes in float32
        assert pipe.transformer.dtype == pipe.video_features.dtype == pipe.text_encoder.dtype == getattr(torch, dtype)
        track = pipe.generate_track(video, 1.0, "a dog barks", mode="independent", num_inference_steps=4, seed=3)
        clip, sync = pipe.encode_video(video, 1.0)
        got[dtype] = {"clip": clip.float(), "sync": sync.float(), "text": pipe.encode_text(["a dog barks"]).float(),
                      "latent": track.latent.float(), "wave": track.waveform}
    for name, ref in got["float32"].items():
        err = _rel(got["bfloat16"][name], ref)
        assert 0.0 < err <= REL_TOL, (name, err)
