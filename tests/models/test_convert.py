"""Converted official checkpoints reload with from_pretrained and keep parity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from models.generation.convert import convert_mmaudio
from models.generation.mmaudio import MMAudio

from tests.models.helpers import single_thread  # noqa: F401  (autouse)

from tests.mmaudio_fixtures import mmaudio_fixtures  # noqa: E402

FIX = mmaudio_fixtures()
pytestmark = pytest.mark.skipif(not FIX.is_dir(), reason="fixtures not present")


@pytest.mark.parametrize("v", ["v1", "v2"])
def test_convert_roundtrip_parity(tmp_path: Path, v: str) -> None:
    cfg = json.loads((FIX / f"mmaudio_tiny_{v}.json").read_text())
    out = convert_mmaudio(FIX / f"mmaudio_tiny_{v}.safetensors", cfg, tmp_path / "transformer")
    assert (out / "config.json").is_file() and (out / "diffusion_pytorch_model.safetensors").is_file()
    net = MMAudio.from_pretrained(out)
    assert not net.training
    io = load_file(str(FIX / f"mmaudio_tiny_{v}_io.safetensors"))
    with torch.no_grad():
        flow = net(io["latent"], io["clip_f"], io["sync_f"], io["text_f"], io["t"])
        empty = net.predict_flow(io["latent"], io["t"], net.get_empty_conditions(2))
    assert (flow - io["flow"]).abs().max() < 1e-4
    assert (empty - io["flow_empty"]).abs().max() < 1e-4
    # Saved keys are exactly the official ones.
    saved = load_file(str(out / "diffusion_pytorch_model.safetensors"))
    official = load_file(str(FIX / f"mmaudio_tiny_{v}.safetensors"))
    assert set(saved) == set(official)
    assert all(torch.equal(saved[k], official[k]) for k in official)
    assert net.config.v2 is (v == "v2")
