"""The frame stage's MMAudio path (crop "mmaudio_clip" / "mmaudio_sync") against the official rule:
on clips whose every frame is distinct noise, the emitted frames are ``select_frames``'s picks on
the decoded timestamps, pixel-exact against ``clip_frames_u8`` / ``sync_frames_u8`` of the decoded
source frames; the demo specs still go through ffmpeg unchanged."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from models.mmaudio_family.video_features import MMAudioVideoFeatures
from models.mmaudio_family.video_preprocess import clip_frames_u8, pick_frames, select_frames, sync_frames_u8
from tasks.ffmpeg_bin import ffmpeg_path
from tasks.frames import frame_count, read_frames

W, H = 200, 120


def _noise_clip(path: Path, rate: str, frames: int, rotation: int = 0) -> Path:
    """A video whose frame i is seeded noise plus i's bits as stripes (every frame distinct)."""
    rng = np.random.default_rng(7)
    raw = rng.integers(0, 256, (frames, H, W, 3), dtype=np.uint8)
    for i in range(frames):
        for b in range(8):
            raw[i, :16, b * 25:(b + 1) * 25] = 255 * ((i >> b) & 1)
    tmp = path.with_suffix(".tmp.mp4") if rotation else path
    subprocess.run([ffmpeg_path(), "-nostdin", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
                    "-s", f"{W}x{H}", "-r", rate, "-i", "pipe:0", "-c:v", "libx264", "-crf", "12", "-g", "10",
                    "-bf", "2", "-pix_fmt", "yuv420p", str(tmp)], input=raw.tobytes(), check=True)
    if rotation:
        subprocess.run([ffmpeg_path(), "-nostdin", "-loglevel", "error", "-y", "-display_rotation", str(rotation),
                        "-i", str(tmp), "-c", "copy", str(path)], check=True)
    return path


def _decoded(path: Path) -> tuple[np.ndarray, list[float]]:
    """Every source frame (rgb24, upright) and its time, read independently of the stage."""
    frames, times = [], []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            x = f.to_ndarray(format="rgb24")
            frames.append(np.rot90(x, (int(f.rotation) // 90) % 4) if f.rotation else x)
            times.append(float(f.time))
    return np.stack(frames), times


SPECS = {"clip": {"fps": 8.0, "size": 384, "crop": "mmaudio_clip"},
         "sync": {"fps": 25.0, "size": 224, "crop": "mmaudio_sync"}}


def _check_window(path: Path, start: float, end: float) -> None:
    src, times = _decoded(path)
    d = round(end - start, 9)  # 3.3 - 1.3 = 1.9999999999999998 would lose a frame to int(8 d)
    sel = select_frames(times, d, start_sec=start)
    for name, official, transform in (("clip", sel.clip_indices, clip_frames_u8),
                                      ("sync", sel.sync_indices, sync_frames_u8)):
        spec = SPECS[name]
        got = read_frames(str(path), start, end, spec)
        n = frame_count(d, spec["fps"])
        assert got.shape == (n, spec["size"], spec["size"], 3) and got.dtype == np.uint8
        # load_video may shorten d to what BOTH streams cover (a 12 fps source gives 49 sync picks in
        # 2 s → 1.96 s → 15 clip frames); the pipeline keeps d, so the rule simply runs on to n
        picks = pick_frames(times, spec["fps"], start + d, start)[:n]
        assert picks[:len(official)] == official
        want_idx = (picks + [picks[-1]] * n)[:n]  # the stream's last frame repeats when it ends early
        want = transform(src[want_idx], spec["size"]).permute(0, 2, 3, 1).numpy()
        assert np.array_equal(got, want), (name, start, end)
        # every output frame is identified as exactly one source frame: the pick is the rule's
        ref = transform(src, spec["size"]).permute(0, 2, 3, 1).numpy()
        found = [[j for j in range(len(ref)) if np.array_equal(g, ref[j])] for g in got]
        assert found == [[j] for j in want_idx]


@pytest.mark.parametrize("rate", ["30000/1001", "25", "12"])
def test_mmaudio_frames_follow_the_official_picking_and_pixels(tmp_path: Path, rate: str) -> None:
    path = _noise_clip(tmp_path / "v.mp4", rate, 60 if rate == "12" else 100)
    _check_window(path, 0.0, 2.0)
    _check_window(path, 1.3, 3.3)  # inside the clip, after a seek


def test_short_stream_repeats_the_last_frame(tmp_path: Path) -> None:
    path = _noise_clip(tmp_path / "v.mp4", "25", 50)  # 2 s
    _check_window(path, 1.0, 3.0)
    got = read_frames(str(path), 1.0, 3.0, SPECS["sync"])
    assert np.array_equal(got[-1], got[30])


def test_display_rotation_is_applied_before_the_resize(tmp_path: Path) -> None:
    path = _noise_clip(tmp_path / "r.mp4", "25", 30, rotation=90)
    src, _ = _decoded(path)
    assert src.shape[1:3] == (W, H)  # upright: portrait
    _check_window(path, 0.0, 1.0)


def test_mmaudio_bundle_asks_for_the_exact_path() -> None:
    specs = MMAudioVideoFeatures.frame_specs.__get__(type("C", (), {"config": type("Cfg", (), {
        "clip_fps": 8.0, "clip_size": 384, "sync_fps": 25.0, "sync_size": 224})()})())()
    assert (specs["clip"].crop, specs["sync"].crop) == ("mmaudio_clip", "mmaudio_sync")


def test_demo_specs_still_use_ffmpeg_unchanged(tmp_path: Path) -> None:
    path = _noise_clip(tmp_path / "v.mp4", "25", 75)
    for crop, vf in (("resize", "fps=8.0,scale=64:64:flags=lanczos"),
                     ("center_crop", "fps=8.0,scale=64:64:force_original_aspect_ratio=increase:flags=lanczos,"
                                     "crop=64:64")):
        got = read_frames(str(path), 1.0, 2.0, {"fps": 8.0, "size": 64, "crop": crop})
        raw = subprocess.run([ffmpeg_path(), "-nostdin", "-loglevel", "error", "-ss", "1.000000", "-t", "1.125000",
                              "-i", str(path), "-map", "0:v:0", "-vf", vf, "-frames:v", "8", "-pix_fmt", "rgb24",
                              "-f", "rawvideo", "pipe:1"], capture_output=True, check=True).stdout
        assert got.tobytes() == raw
