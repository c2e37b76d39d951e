"""The guidance branch u_ψ: identity at init, trainable alone, batched-slice equivalence, own weights."""

from __future__ import annotations

import torch

from models.generation.controlnet import AudioControlNet
from models.generation.mmaudio import MMAudio
from tests.models.helpers import branch_inputs, randomize, single_thread  # noqa: F401  (autouse fixture)

B, N, NC, NS, L = 2, 125, 32, 96, 16


def _setup(seed: int = 0):
    return branch_inputs(seed, B, N, NC, NS)


def test_identity_at_init_exact() -> None:
    net, cond, x, neg, t = _setup()
    for init_from_backbone in (True, False):
        cn = AudioControlNet.from_transformer(net, init_from_backbone=init_from_backbone)
        with torch.no_grad():
            assert torch.equal(cn.predict_flow(net, x, t, cond, neg), net.predict_flow(x, t, cond))


def test_default_layout_and_mapping() -> None:
    net = MMAudio.from_preset("tiny")
    cn = AudioControlNet.from_transformer(net)
    assert cn.config.num_layers == 2 and cn.config.backbone_depth == 4
    assert [cn.block_for(j) for j in range(4)] == [0, 0, 1, 1]
    cn12 = AudioControlNet(latent_dim=8, hidden_dim=64, num_heads=2, backbone_depth=12)
    assert cn12.config.num_layers == 6 and [cn12.block_for(j) for j in range(12)] == [j // 2 for j in range(12)]
    # Copied blocks really are the backbone's (branch block 1 ← backbone block 2 = first fused block).
    assert torch.equal(cn.blocks[1].attn.qkv.weight, net.fused_blocks[0].attn.qkv.weight)
    assert torch.equal(cn.blocks[0].attn.qkv.weight, net.joint_blocks[0].latent_block.attn.qkv.weight)


def test_only_branch_trains_and_moves_output() -> None:
    net, cond, x, neg, t = _setup(3)
    net.requires_grad_(False)
    cn = AudioControlNet.from_transformer(net)
    opt = torch.optim.SGD(cn.parameters(), lr=0.05)
    target = torch.randn(x.shape, generator=torch.Generator().manual_seed(9))
    for step in range(2):
        opt.zero_grad()
        loss = (cn.predict_flow(net, x, t, cond, neg) - target).pow(2).mean()
        loss.backward()
        assert all(p.grad is None for p in net.parameters())
        grads = {n: p.grad for n, p in cn.named_parameters()}
        assert all(g is not None for g in grads.values())
        if step == 0:  # ControlNet: at init only the zero output projections get signal
            assert any(grads[k].abs().sum() > 0 for k in grads if k.startswith("controlnet_blocks"))
            assert all(grads[k].abs().sum() == 0 for k in grads if k.startswith("blocks"))
        else:  # after one step the signal reaches the blocks and the input projection
            assert any(grads[k].abs().sum() > 0 for k in grads if k.startswith("blocks"))
            assert grads["cond_zero_proj.weight"].abs().sum() > 0
        opt.step()
    with torch.no_grad():
        moved = cn.predict_flow(net, x, t, cond, neg)
        assert not torch.allclose(moved, net.predict_flow(x, t, cond))
        # ...and the output now depends on the condition audio.
        assert not torch.allclose(moved, cn.predict_flow(net, x, t, cond, neg.flip(1)))


def test_branch_on_last_slice_of_batch_equals_separate() -> None:
    net, cond, x, neg, t = _setup(5)
    cn = randomize(AudioControlNet.from_transformer(net), 11, gain=0.5)
    null = net.get_empty_conditions(B, latent_len=N, clip_len=NC, sync_len=NS)
    from models.generation.mmaudio import PreprocessedConditions

    big = PreprocessedConditions.cat([null, cond])
    xx, tt = torch.cat([x, x]), torch.cat([t, t])
    with torch.no_grad():
        batched = cn.predict_flow(net, xx, tt, big, neg)
        sep_u = net.predict_flow(x, t, null)
        sep_psi = cn.predict_flow(net, x, t, cond, neg)
    assert torch.allclose(batched[:B], sep_u, atol=1e-5)
    assert torch.allclose(batched[B:], sep_psi, atol=1e-5)
    assert (sep_psi - net.predict_flow(x, t, cond)).abs().max() > 1e-3


def test_own_weights_file_and_strict_base(tmp_path) -> None:
    net, cond, x, neg, t = _setup(7)
    cn = randomize(AudioControlNet.from_transformer(net), 13, gain=0.5)
    net.save_pretrained(tmp_path / "transformer")
    cn.save_pretrained(tmp_path / "controlnet")
    net2 = MMAudio.from_pretrained(tmp_path / "transformer").eval()
    cn2 = AudioControlNet.from_pretrained(tmp_path / "controlnet").eval()
    assert set(net2.state_dict()) == set(net.state_dict())  # no branch keys in the base
    assert not any(k.startswith("joint_blocks") for k in cn2.state_dict())
    with torch.no_grad():
        assert torch.equal(cn2.predict_flow(net2, x, t, cond, neg), cn.predict_flow(net, x, t, cond, neg))
