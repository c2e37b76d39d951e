"""Our MMAudio network against numbers produced by the official code (shared fixtures)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from models.generation.mmaudio import MMAudio, PRESETS, read_official_state_dict
from models.generation.nag import nag_velocity
from models.generation.sampling import euler_sample

from tests.models.helpers import single_thread  # noqa: F401  (autouse)

from tests.mmaudio_fixtures import mmaudio_fixtures  # noqa: E402

FIX = mmaudio_fixtures()
pytestmark = pytest.mark.skipif(not FIX.is_dir(), reason="MMAudio parity fixtures not present")


def _load(v: str) -> tuple[MMAudio, dict[str, torch.Tensor]]:
    cfg = json.loads((FIX / f"mmaudio_tiny_{v}.json").read_text())
    net = MMAudio.load_official(FIX / f"mmaudio_tiny_{v}.safetensors", cfg)
    return net, load_file(str(FIX / f"mmaudio_tiny_{v}_io.safetensors"))


def _cfg_x1(net: MMAudio, io: dict[str, torch.Tensor], negative_text: torch.Tensor | None = None) -> torch.Tensor:
    cond = net.preprocess_conditions(io["clip_f"], io["sync_f"], io["text_f"])
    null = net.get_empty_conditions(2, negative_text_features=negative_text)

    def fn(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        tt = t.expand(x.shape[0])
        return nag_velocity(net.predict_flow(x, tt, null), net.predict_flow(x, tt, cond), None, 4.5, 0.0)

    return euler_sample(fn, io["x0"], 4)


@pytest.fixture(scope="module", params=["v1", "v2"])
def official(request):
    torch.manual_seed(0)
    return (request.param, *_load(request.param))


def test_flow_matches_official(official) -> None:
    v, net, io = official
    with torch.no_grad():
        flow = net(io["latent"], io["clip_f"], io["sync_f"], io["text_f"], io["t"])
        empty = net.predict_flow(io["latent"], io["t"], net.get_empty_conditions(2))
    # Spec: < 1e-4. We hold 1e-5 (we reach ~1e-6): on these tiny random nets RoPE moves the
    # output by only ~1e-4 (no RoPE at all: 8e-5 on v1; unscaled clip RoPE: 2e-5), so 1e-4
    # alone could not catch a RoPE error.
    assert (flow - io["flow"]).abs().max() < 1e-5
    assert (empty - io["flow_empty"]).abs().max() < 1e-5
    # The fixture is not trivially matched: the two outputs really differ.
    assert (io["flow"] - io["flow_empty"]).abs().max() > 0.1


def test_cfg_sampling_matches_official(official) -> None:
    v, net, io = official
    with torch.no_grad():
        x1 = _cfg_x1(net, io)
        x1n = _cfg_x1(net, io, negative_text=io["neg_text_f"])
    assert (x1 - io["x1"]).abs().max() < 1e-3
    assert (net.unnormalize(x1) - io["x1_unnormalized"]).abs().max() < 1e-3
    assert (x1n - io["x1_negative_text"]).abs().max() < 1e-3
    assert (io["x1"] - io["x1_negative_text"]).abs().max() > 1e-2


def test_cached_conditions_equal_per_call(official) -> None:
    _, net, io = official
    with torch.no_grad():
        cond = net.preprocess_conditions(io["clip_f"], io["sync_f"], io["text_f"])
        a = net.predict_flow(io["latent"], io["t"], cond)
        b = net(io["latent"], io["clip_f"], io["sync_f"], io["text_f"], io["t"])
    assert torch.equal(a, b)


def test_short_window(official) -> None:
    """A 4 s window: every stream halves, RoPE is rebuilt for the new lengths."""
    _, net, io = official
    lat, clip, sync = io["latent"][:, :125], io["clip_f"][:, :32], io["sync_f"][:, :96]
    with torch.no_grad():
        out = net(lat, clip, sync, io["text_f"], io["t"])
        empty = net.predict_flow(lat, io["t"], net.get_empty_conditions(2, clip_len=32, sync_len=96))
    assert out.shape == (2, 125, net.config.latent_dim) and empty.shape == out.shape
    assert torch.isfinite(out).all()
    assert net.rotations(125, 32, torch.device("cpu"))[0].shape[2] == 125


def test_loader_drops_derived_keys_and_is_strict() -> None:
    sd = load_file(str(FIX / "mmaudio_tiny_v1.safetensors"))
    cfg = json.loads((FIX / "mmaudio_tiny_v1.json").read_text())
    extra = dict(sd, **{"t_embed.freqs": torch.zeros(128), "latent_rot": torch.zeros(3), "clip_rot": torch.zeros(3)})
    assert set(read_official_state_dict(extra)) == set(sd)
    MMAudio.load_official(extra, cfg)  # derived keys are dropped, not an error
    with pytest.raises(RuntimeError):
        MMAudio.load_official(dict(sd, bogus=torch.zeros(1)), cfg)
    with pytest.raises(RuntimeError):  # v1 weights do not fit the v2 layout
        MMAudio.load_official(sd, dict(cfg, v2=True))


def test_pth_checkpoint(tmp_path: Path) -> None:
    sd = load_file(str(FIX / "mmaudio_tiny_v2.safetensors"))
    torch.save(dict(sd, latent_rot=torch.zeros(1)), tmp_path / "ck.pth")
    net = MMAudio.load_official(tmp_path / "ck.pth", json.loads((FIX / "mmaudio_tiny_v2.json").read_text()))
    assert not net.training
    assert torch.equal(net.state_dict()["empty_string_feat"], sd["empty_string_feat"])


@pytest.mark.parametrize("preset", ["small_16k", "small_44k", "medium_44k", "large_44k", "large_44k_v2"])
def test_official_presets_match_manifest(preset: str) -> None:
    manifest = json.loads((FIX / "mmaudio_state_dict_manifest.json").read_text())[preset]
    with torch.device("meta"):
        net = MMAudio.from_preset(preset)
    shapes = {k: list(v.shape) for k, v in net.state_dict().items()}
    assert shapes == manifest["keys"]
    assert sum(v.numel() for v in net.state_dict().values()) == manifest["num_params"]


def test_tiny_preset_builds() -> None:
    net = MMAudio.from_preset("tiny")
    assert net.config.hidden_dim == 128 and len(net.joint_blocks) == 2 and len(net.fused_blocks) == 2
    assert net.empty_string_feat.shape == (16, 64)
    assert PRESETS["tiny"]["v2"] is True


def test_rope_is_relative_and_clip_shares_the_audio_time_axis() -> None:
    from models.generation.mmaudio import apply_rope, rope_table

    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 1, 1, 16, generator=g), torch.randn(1, 1, 1, 16, generator=g)
    rot = rope_table(40, 16)

    def at(x, p):
        return apply_rope(x, rot[:, :, p:p + 1])

    # A rotation: norms kept; scores depend only on the offset between positions.
    assert torch.allclose(at(q, 7).norm(), q.norm(), atol=1e-5)
    s1 = (at(q, 3) * at(k, 10)).sum()
    s2 = (at(q, 20) * at(k, 27)).sum()
    assert torch.allclose(s1, s2, atol=1e-4) and not torch.allclose(s1, (q * k).sum(), atol=1e-3)
    # Clip token i sits at audio frame i · N/Nc (8 s: 250/64), so clip token 32 ≡ audio frame 125.
    lat, clip = MMAudio.from_preset("tiny").rotations(250, 64, torch.device("cpu"))
    assert torch.allclose(clip[:, :, 32], lat[:, :, 125], atol=1e-4)
    assert not torch.allclose(clip[:, :, 32], lat[:, :, 32], atol=1e-2)
