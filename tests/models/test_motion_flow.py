"""The demo sync stream's signed velocity channels (models/demo_family/motion_flow.py, issue 19):
a moving blob's velocity is recovered with its sign and size, an impact inside continuous
motion (a reversal) shows as a sign change at its frame, and the bundle config picks the
channel groups without changing what older bundles compute."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.demo_family.features import VideoFeatures
from models.demo_family.motion_flow import FLOW_RES, cell_velocity, compress_signed


def _blob_frames(xs: list[float], size: int = 64, y: float = 40.0, radius: float = 7.0) -> torch.Tensor:
    """Luma frames ``[1, T, size, size]``: a soft bright disc centred at (xs[t], y) on grey."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    frames = []
    for x in xs:
        d = np.sqrt((xx - x) ** 2 + (yy - y) ** 2)
        frames.append(0.2 + 0.6 / (1 + np.exp((d - radius) / 1.5)))
    return torch.tensor(np.stack(frames), dtype=torch.float32)[None]


@pytest.mark.parametrize("speed", [-2.0, -0.8, 0.8, 2.0])
def test_velocity_of_a_translating_blob(speed: float) -> None:
    xs = [32 + speed * (i - 5) for i in range(11)]
    v = cell_velocity(_blob_frames(xs), grid=1)[0]  # one cell: the whole frame
    vx, vy = v[1:, 0], v[1:, 1]
    px_per_frame = speed * FLOW_RES / 64  # the estimate is in pixels of the 32-grid
    assert torch.all(torch.sign(vx) == np.sign(speed))
    assert float(vx.mean()) == pytest.approx(px_per_frame, rel=0.25)
    assert float(vy.abs().max()) < 0.1 * abs(px_per_frame)
    assert float(v[0].abs().max()) == 0.0  # frame 0 has no predecessor


def test_a_reversal_is_a_sign_change_at_its_frame() -> None:
    # Right for 8 frames, then back: the "knock" is at frame 8 (the turning point).
    xs = [24 + 1.5 * i for i in range(9)] + [24 + 1.5 * (16 - i) for i in range(9, 17)]
    vx = cell_velocity(_blob_frames(xs), grid=4)[0, :, :16].sum(-1)
    signs = torch.sign(vx[1:])
    change = int(torch.nonzero(signs[1:] != signs[:-1])[0]) + 2  # first frame after the flip
    assert change == 9  # frame 9 is the first to move left
    assert torch.all(signs[:7] > 0) and torch.all(signs[8:] < 0)


def test_flat_cells_stay_still() -> None:
    frames = torch.full((1, 5, 64, 64), 0.4)
    frames[:, :, 30:34, 30:34] += torch.arange(5.0)[None, :, None, None] * 0.01  # brightness change only
    v = cell_velocity(frames, grid=4)
    assert torch.isfinite(v).all()
    assert float(v[:, :, [0, 3, 12, 15]].abs().max()) == 0.0  # corners never change


def test_compress_signed_is_odd_and_monotone() -> None:
    v = torch.linspace(-3, 3, 61)
    c = compress_signed(v, 20.0)
    assert torch.allclose(c, -compress_signed(-v, 20.0))
    assert torch.all(c[1:] > c[:-1])


def test_channel_groups_and_the_older_layout() -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (50, 64, 64, 3), dtype=np.uint8)
    old = VideoFeatures()  # what every bundle before issue 19 has: energy + onset, 32 dims
    new = VideoFeatures(sync_channels=("energy", "onset", "velocity"), sync_dim=64)
    a, b = old.encode_sync(frames, 2.0), new.encode_sync(frames, 2.0)
    assert a.shape == (1, 48, 32) and b.shape == (1, 48, 64)
    assert torch.equal(a, b[..., :32])
    assert float(b[..., 32:].abs().max()) > 0
    with pytest.raises(ValueError, match="sync_dim must be 64"):
        VideoFeatures(sync_channels=("energy", "onset", "velocity"), sync_dim=32)
    with pytest.raises(ValueError, match="subset"):
        VideoFeatures(sync_channels=("colour",), sync_dim=16)
