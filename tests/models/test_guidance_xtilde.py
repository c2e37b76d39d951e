"""Issue 17 §5, what raises the guidance branch's use of x̃: the time-pooled condition path of
the branch, the shifted training time, and the FoleyWorld pairs' held-out probe and controls."""

from __future__ import annotations

import torch

from models.demo_family.codec import MelCodec
from models.demo_family.features import VideoFeatures
from models.generation.controlnet import AudioControlNet
from models.generation.mmaudio import MMAudio
from models.training import foleyworld as fw
from models.training.bundle_recipes import CODEC_ANALYSIS, FoleyWorldPairs
from models.training.flow_matching import sample_log_normal_t
from models.training.guidance import xtilde_dependence
from models.training.scene_bank import build_bank
from tests.models.helpers import branch_inputs, randomize, single_thread  # noqa: F401  (autouse fixture)

B, N, NC, NS = 2, 125, 32, 96


def _setup(seed: int = 0):
    return branch_inputs(seed, B, N, NC, NS)


def test_pooled_branch_is_the_identity_at_init() -> None:
    net, cond, x, neg, t = _setup()
    cn = AudioControlNet.from_transformer(net, pooled_cond=True)
    assert cn.cond_pool_proj is not None and float(cn.cond_pool_proj.weight.detach().abs().sum()) == 0.0
    with torch.no_grad():
        assert torch.equal(cn.predict_flow(net, x, t, cond, neg), net.predict_flow(x, t, cond))


def test_pooled_path_alone_carries_the_condition(tmp_path) -> None:
    """With the token path closed (its zero projection still zero), x̃ reaches u_ψ through the
    pooled path alone; closing that too gives the base back exactly."""
    net, cond, x, neg, t = _setup(2)
    cn = randomize(AudioControlNet.from_transformer(net, pooled_cond=True), 5, gain=0.5)
    with torch.no_grad():
        cn.cond_zero_proj.weight.zero_()
        cn.cond_zero_proj.bias.zero_()
        u = cn.predict_flow(net, x, t, cond, neg)
        assert (u - cn.predict_flow(net, x, t, cond, neg + 1.0)).abs().max() > 1e-5
        # Changing only the last frames of x̃ moves the first position's output: the path is global.
        late = neg.clone()
        late[:, -4:] += 3.0
        assert (u[:, 0] - cn.predict_flow(net, x, t, cond, late)[:, 0]).abs().max() > 1e-6
    cn.save_pretrained(tmp_path / "cn")
    back = AudioControlNet.from_pretrained(tmp_path / "cn").eval()
    assert back.config.pooled_cond and back.cond_pool_proj is not None
    with torch.no_grad():
        assert torch.equal(back.predict_flow(net, x, t, cond, neg), u)
        cn.cond_pool_proj.weight.zero_()
        cn.cond_pool_proj.bias.zero_()
        assert torch.equal(cn.predict_flow(net, x, t, cond, neg), cn.predict_flow(net, x, t, cond, neg + 1.0))


def test_branch_without_pooling_keeps_its_saved_layout(tmp_path) -> None:
    """Branches trained before the pooled path (and converted ones) load as saved: no new keys."""
    net = MMAudio.from_preset("tiny")
    cn = AudioControlNet.from_transformer(net)
    assert cn.cond_pool_proj is None and not any("pool" in k for k in cn.state_dict())
    cn.save_pretrained(tmp_path / "cn")
    assert "cond_pool_proj.weight" not in AudioControlNet.from_pretrained(tmp_path / "cn").state_dict()


def test_shifted_time_keeps_the_default_draws_and_moves_towards_noise() -> None:
    g0, g1 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(sample_log_normal_t(1000, g0), torch.sigmoid(torch.randn(1000, generator=g1)))
    low = sample_log_normal_t(4000, torch.Generator().manual_seed(4), -0.8)
    mid = sample_log_normal_t(4000, torch.Generator().manual_seed(4))
    assert float(low.median()) < 0.35 < float(mid.median())
    assert float((low < 0.2).float().mean()) > 2 * float((mid < 0.2).float().mean())


def test_foleyworld_pairs_probe_held_out_scenes_and_controls() -> None:
    codec = MelCodec(log_floor=0.05, **CODEC_ANALYSIS)
    vf = VideoFeatures(seed=0).requires_grad_(False)
    train_seeds = list(fw.SPLITS["train"])[100_000:100_003]
    probe_seeds = list(fw.SPLITS["train"])[100_003:100_005]
    bank, probe = build_bank(train_seeds, 8.0, codec, vf), build_bank(probe_seeds, 8.0, codec, vf)
    silence = codec.encode(torch.zeros(1, 4 * codec.sample_rate))[0][:125]
    src = FoleyWorldPairs(bank, codec.latent_rate, train_seeds, probe, silence)
    b = src.probe_pairs(torch.Generator().manual_seed(0), 6)
    assert b.x1.shape == b.cond.shape == (6, 125, codec.latent_dim)
    probe_halves = {bytes(probe.mix_lat[s][a:a + 125].float().numpy()) for s in range(2) for a in (0, 125)}
    assert all(bytes(r.numpy()) in probe_halves for r in b.x1)  # never a training scene
    assert torch.equal(src.silence(), silence)
    other = src.other_clip_condition(b, torch.Generator().manual_seed(1))
    assert other.shape == b.cond.shape

    net = MMAudio.from_preset("tiny", latent_dim=codec.latent_dim).eval()
    cn = randomize(AudioControlNet.from_transformer(net, pooled_cond=True), 7, gain=0.5).eval()

    def project(batch):
        return type(batch)(batch.x1, batch.cond, vf.clip_proj(batch.clip), batch.sync)

    dep = xtilde_dependence(net, cn, src, n=4, times=(0.2,), transform=project)
    row = dep["t=0.2"]
    assert {"true", "other_clip", "silent", "gain_other", "gain_silent"} <= set(row)
    assert row["gain_silent"] == 1 - row["true"] / row["silent"]
