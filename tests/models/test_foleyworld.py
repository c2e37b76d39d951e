"""FoleyWorld: deterministic, split-honest, and its sounds happen when its objects move."""

from __future__ import annotations

import numpy as np
import pytest

from models.training import foleyworld as fw


def test_deterministic_per_seed() -> None:
    a, b = fw.make_scene(42, 4.0, 2), fw.make_scene(42, 4.0, 2)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.mixture, b.mixture)
    assert [s.caption for s in a.sources] == [s.caption for s in b.sources]
    assert not np.array_equal(a.mixture, fw.make_scene(43, 4.0, 2).mixture)


def test_splits_disjoint_and_enforced() -> None:
    ranges = list(fw.SPLITS.values())
    for i, r in enumerate(ranges):
        for q in ranges[i + 1:]:
            assert max(r.start, q.start) >= min(r.stop, q.stop)
    assert fw.check_split(fw.SPLITS["test"].start, "test")
    with pytest.raises(ValueError):
        fw.check_split(0, "test")


def test_recording_groups_disjoint() -> None:
    """Generator, evaluator and test hear different recordings (not just different crops)."""
    for cls in fw.CLASSES:
        groups = {g: {x.tobytes()[:4000] for x in fw.recordings(cls, g)}
                  for g in ("train", "evaluator", "test")}
        if cls in ("knocking", "bell"):  # synthesised only
            assert not any(groups.values())
            continue
        assert all(groups.values()), cls
        assert not (groups["train"] & groups["evaluator"]) and not (groups["train"] & groups["test"])
        assert not (groups["evaluator"] & groups["test"])


@pytest.mark.parametrize("cls", fw.CLASSES)
def test_every_class_sounds_finite_unclipped(cls: str) -> None:
    sc = fw.make_scene(7, 4.0, 1, classes=[cls])
    a = sc.sources[0].audio
    assert np.isfinite(a).all() and np.abs(a).max() < 1.0 and np.sqrt((a ** 2).mean()) > 1e-3
    assert fw.class_of_caption(sc.sources[0].caption) == cls


def _object_tracks(sc: fw.Scene, src: fw.Source) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame-difference energy and colour-centroid (y, x) of the source's object per frame."""
    y0, x0, y1, x1 = src.box
    region = sc.frames[:, y0:y1, x0:x1]
    motion = np.abs(np.diff(region.astype(np.float32), axis=0)).mean(axis=(1, 2, 3))
    mask = (region == np.array(fw.COLOURS[src.cls], np.uint8)).all(-1)
    yy, xx = np.mgrid[0:y1 - y0, 0:x1 - x0]
    count = mask.sum((1, 2)).clip(1)
    return motion, (mask * yy).sum((1, 2)) / count, (mask * xx).sum((1, 2)) / count


def _peak_offset(signal: np.ndarray, frame: int, reach: int = 3) -> int:
    lo, hi = max(0, frame - reach), min(len(signal), frame + reach + 1)
    return lo + int(np.argmax(signal[lo:hi])) - frame


# Jerks (head, hand, comb) peak the frame-difference energy at the sound; contacts (foot
# lands, fist meets door, bell at the end of its swing) put the object at an extreme position.
@pytest.mark.parametrize("cls", ["dog", "clock", "rooster", "footsteps", "knocking", "bell"])
@pytest.mark.parametrize("seed", [5, 6])
def test_sound_onsets_follow_visual_motion(cls: str, seed: int) -> None:
    sc = fw.make_scene(seed, 8.0, 1, classes=[cls])
    src = sc.sources[0]
    motion, cy, cx = _object_tracks(sc, src)
    signal = {"dog": motion, "clock": motion, "rooster": motion, "footsteps": cy,
              "knocking": cx, "bell": np.abs(cx - np.median(cx))}[cls]
    assert len(src.onsets) >= 2
    for t in src.onsets:
        f = int(round(t * fw.FPS))
        assert abs(_peak_offset(signal, f)) <= 1, (cls, t)
        # ... and the audio has energy right after it
        a = int(t * fw.SAMPLE_RATE)
        assert np.abs(src.audio[a:a + 1600]).max() > 0.05


def test_continuous_sources_follow_their_control() -> None:
    """Wave height is the surf's loudness: per-frame level correlates with audio envelope."""
    sc = fw.make_scene(11, 8.0, 1, classes=["waves"])
    src = sc.sources[0]
    _, cy, _ = _object_tracks(sc, src)
    hop = fw.SAMPLE_RATE // fw.FPS
    env = np.sqrt((src.audio[: len(cy) * hop].reshape(-1, hop) ** 2).mean(1))
    assert np.corrcoef(-cy, env)[0, 1] > 0.3


def test_classes_and_objects_distinct() -> None:
    assert len(set(fw.CLASSES)) == len(fw.CLASSES) >= 10
    assert len(set(fw.COLOURS.values())) == len(fw.CLASSES)
    seen = {fw.class_of_caption(c) for cls in fw.CLASSES for c in fw.CAPTIONS[cls]}
    assert seen == set(fw.CLASSES)
    for cls in fw.CLASSES:
        assert all(fw.class_of_caption(c) == cls for c in fw.CAPTIONS[cls]), cls


def test_scene_speed() -> None:
    import time
    fw.make_scene(fw.SPLITS["val"].start, 8.0)  # warm the recording cache
    t = time.perf_counter()
    for k in range(5):
        fw.make_scene(fw.SPLITS["val"].start + k, 8.0, size=128)
    assert (time.perf_counter() - t) / 5 < 0.3


def test_clip_cuts_and_captions() -> None:
    clip = fw.make_clip(3, 20.0, 3)
    assert len(clip.cut_times) == 2 and abs(clip.duration - 20.0) < 1e-6
    assert clip.frames.shape[0] == 20 * fw.FPS
    assert fw.class_of_caption("Ocean waves crash loudly") == "waves"
    assert fw.class_of_caption("a beautiful sunset") is None


def test_clip_frames_are_the_frames_under_each_clip_sample() -> None:
    idx = fw.clip_frame_indices(8.0)
    assert len(idx) == 64 and idx[0] == 1 and idx[-1] == 198
    times = (np.arange(64) + 0.5) / 8.0  # centre of each 8 fps clip sample
    assert np.all((idx / fw.FPS <= times) & (times < (idx + 1) / fw.FPS))
    frames = np.zeros((200, 4, 4, 3), np.uint8)
    video = fw.model_video(frames)
    assert video["clip"].shape[0] == 64 and video["sync"] is frames
