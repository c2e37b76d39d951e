"""tasks/true_peak.py: the block-wise true peak is the one-call 4× oversampling's, bit for bit,
wherever the blocks are cut (so the limiter's gains and the mix's bytes do not change)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import resample_poly

from tasks.polyphase import REACH
from tasks.true_peak import true_peak


def _reference(x: np.ndarray) -> np.ndarray:
    """The definition, in one call."""
    return np.abs(resample_poly(x.astype(np.float64), 4, 1)).reshape(len(x), 4).max(axis=1)


@pytest.mark.parametrize("block", [64, 97, 2 * REACH + 3, 1 << 12])
def test_blocks_give_the_one_call_values(block: int) -> None:
    rng = np.random.default_rng(block)
    n = 20000
    bursts = (rng.random(n // 400) < 0.4).repeat(400)
    x = (rng.normal(0, 0.4, n) * bursts).astype(np.float32)
    x[[0, 1, block - 1, block, n - 1]] = [1.4, -1.2, 1.7, -1.9, 1.3]  # peaks at the cuts and ends
    assert np.array_equal(true_peak(x, block=block), _reference(x))


@pytest.mark.parametrize("n", [1, 7, 23, 4801])
def test_short_signals(n: int) -> None:
    x = np.random.default_rng(n).normal(0, 0.6, n).astype(np.float32)
    assert np.array_equal(true_peak(x, block=16), _reference(x))
    assert np.array_equal(true_peak(x), _reference(x))


def test_finds_inter_sample_peaks() -> None:
    # A tone near fs/4 sampled off its crests: the samples stay under 0.75, the wave reaches 1.
    x = np.sin(np.arange(48000) * 0.5 * np.pi + np.pi / 4).astype(np.float32)
    assert np.abs(x).max() < 0.75 and true_peak(x, block=1000).max() > 0.95


def test_the_mix_resampler_is_the_one_call_resampler() -> None:
    from tasks.mix import resample
    from tasks.polyphase import BLOCK

    x = np.random.default_rng(3).normal(0, 0.3, BLOCK + 12345)  # float64, as the mix's stems
    assert np.array_equal(resample(x, 16000, 48000), resample_poly(x, 3, 1).astype(np.float32))
    assert np.array_equal(resample(x[:999], 16000, 44100),
                          resample_poly(x[:999], 441, 160).astype(np.float32))
