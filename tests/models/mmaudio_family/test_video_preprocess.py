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
    resize_bicubic_u8,
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


def test_a_frame_exactly_at_the_window_end_is_kept_and_later_ones_are_not() -> None:
    times = [i / 8 for i in range(20)]  # 8 fps source read at 8 fps: one pick per frame
    assert pick_frames(times, 8, 1.0) == list(range(9))  # 0 … 1.0 s inclusive
    assert pick_frames(times, 8, 1.0, start_sec=0.5) == [4, 5, 6, 7, 8]


def test_float_pixels_are_the_official_affine_maps_of_the_levels() -> None:
    # A flat frame stays flat through the antialiased resize (taps sum to one), so each level
    # shows the scaling exactly: x / 255 for CLIP, (x / 255 − 0.5) / 0.5 for Synchformer.
    for level in (0, 51, 128, 255):
        frames = torch.full((1, 90, 120, 3), level, dtype=torch.uint8)
        c, s = clip_pixels(frames), sync_pixels(frames)
        assert torch.allclose(c, torch.full_like(c, level / 255), atol=1e-6), level
        assert torch.allclose(s, torch.full_like(s, (level / 255 - 0.5) / 0.5), atol=1e-6), level


def test_frames_in_another_layout_are_refused() -> None:
    ok = torch.zeros(2, 50, 60, 3, dtype=torch.uint8)
    for bad in (ok[0], ok.unsqueeze(0), ok[..., :2], ok.permute(0, 3, 1, 2)):
        with pytest.raises(ValueError, match="uint8 frames"):
            sync_pixels(bad)
    assert sync_pixels(ok).shape == (2, 3, 224, 224)


def test_center_crop_takes_any_leading_dims_and_refuses_too_small_frames() -> None:
    x = torch.arange(3 * 6 * 8).reshape(3, 6, 8)  # [C, H, W]
    assert center_crop(x, 4).tolist() == x[:, 1:5, 2:6].tolist()
    assert center_crop(x, 6).tolist() == x[:, :, 1:7].tolist()  # exactly the short side: fits
    t = x.transpose(1, 2)  # portrait [C, 8, 6]
    assert center_crop(t, 6).tolist() == t[:, 1:7, :].tolist()
    tall = torch.arange(10 * 4).reshape(1, 10, 4)  # 6 rows to spare: 3 off the top
    assert center_crop(tall, 4).tolist() == tall[:, 3:7, :].tolist()
    for size in (7, 9):
        with pytest.raises(ValueError, match="cannot centre-crop"):
            center_crop(x, size)


def test_the_non_cpu_fallback_resizes_to_uint8() -> None:
    # The float path runs only off the CPU; the meta device reaches it here (shapes and dtypes,
    # no values: the values are the CPU kernel's, within one level).
    x = torch.zeros(2, 3, 100, 180, dtype=torch.uint8, device="meta")
    y = resize_bicubic_u8(x, (50, 60))
    assert y.shape == (2, 3, 50, 60) and y.dtype == torch.uint8 and y.device.type == "meta"


def test_a_short_clip_stream_shortens_the_duration_and_the_sync_stream() -> None:
    # A 250 fps video ending at 1.124 s, 2 s requested: CLIP gets 9 frames (0 … 1.0 s) = 1.125 s,
    # Synchformer 29 (0 … 1.12 s) = 1.16 s; the shorter stream sets the duration (9 / 8 s), and
    # sync keeps int(25 · 1.125) = 28 of its 29 frames.
    times = [i / 250 for i in range(282)]
    sel = select_frames(times, 2.0)
    assert sel.duration == 9 / 8
    assert sel.clip_indices == pick_frames(times, 8, 2.0) and len(sel.clip_indices) == 9
    assert sel.sync_indices == pick_frames(times, 25, 2.0)[:28]
