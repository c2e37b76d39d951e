"""MMAudio's sequence lengths (official SequenceConfig) for any duration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.mmaudio_family.lengths import num_sync_segments, sequence_lengths
from models.mmaudio_family.parity_vision import lengths_parity

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "mmaudio-family"


def test_every_fixture_row() -> None:
    table = json.loads((FIX / "sequence_lengths.json").read_text())
    for mode in ("16k", "44k"):
        assert table[mode]
        for row in table[mode]:
            ours = sequence_lengths(row["duration"], mode).to_dict()
            assert {k: ours[k] for k in row} == row, (mode, row["duration"])
    assert lengths_parity(FIX) == {"sequence_lengths_mismatched": 0.0}


def test_official_eight_second_constants() -> None:
    a, b = sequence_lengths(8.0, "16k"), sequence_lengths(8.0, "44k")
    assert (a.latent_seq_len, a.clip_seq_len, a.sync_seq_len, a.num_audio_frames) == (250, 64, 192, 128000)
    assert (b.latent_seq_len, b.clip_seq_len, b.sync_seq_len, b.num_audio_frames) == (345, 64, 192, 353280)


def test_short_windows_and_unknown_modes() -> None:
    assert sequence_lengths(0.64, "16k").sync_seq_len == 8  # exactly one segment of 16 frames
    assert sequence_lengths(0.5, "16k").sync_seq_len == 0
    with pytest.raises(KeyError, match="unknown audio mode"):
        sequence_lengths(8.0, "22k")


def test_sync_segments_count_whole_segments_of_16_frames_every_8() -> None:
    # 200 frames (8 s at 25 fps): segments start at 0, 8, …, 184 → 24 of them.
    assert num_sync_segments(200) == 24
    assert [num_sync_segments(n) for n in (16, 23.9, 24, 31.9, 32)] == [1, 1, 2, 2, 3]
    # fewer than 16 frames: no segment (the official expression would give 0 or go negative)
    assert num_sync_segments(15.9) == 0 and num_sync_segments(5) == 0 and num_sync_segments(0) == 0
    # each segment is 8 sync tokens: the same count the sequence length uses
    for d in (0.5, 0.64, 1.0, 3.3, 4.7, 8.0, 10.0):
        assert sequence_lengths(d).sync_seq_len == 8 * num_sync_segments(d * 25), d


def test_the_default_mode_is_16k() -> None:
    assert sequence_lengths(8.0) == sequence_lengths(8.0, "16k")
    assert sequence_lengths(8.0).sampling_rate == 16000
