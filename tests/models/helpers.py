"""Shared helpers for model tests: seeded random weights (a freshly initialised MMAudio is the
zero function, which would make every comparison vacuous)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from models.generation.mmaudio import MMAudio


@torch.no_grad()
def randomize(module: nn.Module, seed: int, gain: float = 1.0) -> nn.Module:
    """Every parameter ~ N(0, gain²/fan_in) (vectors: N(0, 0.1²)); latent_std in [0.5, 1.5]."""
    g = torch.Generator().manual_seed(seed)
    for name, p in module.named_parameters():
        if name.endswith("latent_std"):
            p.copy_(0.5 + torch.rand(p.shape, generator=g))
        elif p.dim() >= 2 and not name.startswith("empty_") and "pos_emb" not in name:
            p.copy_(torch.randn(p.shape, generator=g) * gain / math.sqrt(math.prod(p.shape[1:])))
        else:
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return module


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """One intra-op thread while these tests run: the tiny networks gain nothing from two, and on
    a shared 2-core machine OpenMP threads fighting other jobs made forwards ~30× slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def branch_inputs(seed: int = 0, b: int = 2, n: int = 125, nc: int = 32, ns: int = 96):
    """A randomised tiny MMAudio and the guidance branch's inputs: u_ψ conditions (video on,
    text null), x_t, the negative latent x̃ and t = (0.2, 0.8)."""
    torch.manual_seed(seed)
    net = randomize(MMAudio.from_preset("tiny"), seed).eval()
    g = torch.Generator().manual_seed(seed + 1)
    c = net.config
    clip = torch.randn(b, nc, c.clip_dim, generator=g)
    sync = torch.randn(b, ns, c.sync_dim, generator=g)
    x = torch.randn(b, n, c.latent_dim, generator=g)
    neg = torch.randn(b, n, c.latent_dim, generator=g)
    with torch.no_grad():
        cond = net.preprocess_conditions(clip, sync, net.empty_string_feat[None].expand(b, -1, -1), n)
    return net, cond, x, neg, torch.tensor([0.2, 0.8])
