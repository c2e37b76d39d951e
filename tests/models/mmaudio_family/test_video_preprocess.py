"""MMAudio's load_video: frame picking and pixel transforms (tests/fixtures/mmaudio-family)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from models.mmaudio_family.parity_vision import video_preprocess_parity
from models.mmaudio_family.video_preprocess import (
    center_crop,
    clip_pixels,
    pick_frames,
    select_frames,
    short_side_size,
    sync_pixels,
)

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "mmaudio-family"


def test_pixels_and_frame_selection_match_the_official_load_video() -> None:
    errors = video_preprocess_parity(FIX)
    # torch's native uint8 antialiased bicubic is what torchvision runs: exact, not within a level.
    assert errors == {k: 0.0 for k in errors}, errors
    assert set(errors) >= {"clip_frames_u8", "sync_frames_u8", "frame_selection_rows_mismatched"}


def test_each_frame_selection_row() -> None:
    rows = json.loads((FIX / "video_preprocess.json").read_text())["frame_selection"]["rows"]
    times = None
    for row in rows:
        if isinstance(row["source_frame_times"], list):
            times = row["source_frame_times"]
        sel = select_frames(times, row["duration_sec_requested"])
        assert sel.clip_indices == row["clip_source_indices"], row["source_fps"]
        assert sel.sync_indices == row["sync_source_indices"], row["source_fps"]
        assert sel.duration == pytest.approx(row["duration_sec_returned"], abs=1e-12)


def test_float_accumulation_is_kept() -> None:
    # 25 fps source read at 25 fps: next reaches 0.12000000000000001 > 0.12, so frame 3 is
    # emitted at 0.16 … i.e. frame 6 is skipped and frame 7 repeated (the official behaviour).
    times = [i / 25 for i in range(20)]
    assert pick_frames(times, 25, 0.76)[:9] == [0, 1, 2, 3, 4, 5, 7, 7, 8]
    # 12 fps at 25: every source frame repeats about twice.
    assert pick_frames([i / 12 for i in range(6)], 25, 0.5)[:5] == [0, 1, 1, 2, 2]
    # A window starting later: same rule on the shifted grid.
    assert pick_frames([i / 30 for i in range(90)], 8, 2.0, start_sec=1.0)[:3] == [30, 34, 38]


def test_short_side_resize_and_center_crop_geometry() -> None:
    assert short_side_size(232, 300, 224) == (224, 289)
    assert short_side_size(640, 360, 224) == (398, 224)
    x = torch.arange(5 * 9).reshape(1, 1, 5, 9)
    # round-half-to-even: (9 − 4) / 2 = 2.5 → 2 columns off the left, (5 − 4) / 2 = 0.5 → 0 rows off the top.
    assert center_crop(x, 4)[0, 0].tolist() == x[0, 0, 0:4, 2:6].tolist()


def test_float_outputs_have_the_official_ranges_and_shapes() -> None:
    frames = torch.randint(0, 256, (2, 100, 180, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    c, s = clip_pixels(frames), sync_pixels(frames)
    assert c.shape == (2, 3, 384, 384) and c.dtype == torch.float32
    assert s.shape == (2, 3, 224, 224)
    assert 0.0 <= c.min() and c.max() <= 1.0 and -1.0 <= s.min() and s.max() <= 1.0
    with pytest.raises(ValueError, match="uint8 frames"):
        clip_pixels(frames.float())
