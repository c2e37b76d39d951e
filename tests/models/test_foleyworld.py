"""FoleyWorld: deterministic, split-honest, and its sounds happen when its objects move."""

from __future__ import annotations

import numpy as np
import pytest

from models import foleyworld as fw


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
    for cls in ("dog", "rain", "footsteps"):
        train = {x.tobytes()[:4000] for x in fw.recordings(cls, "train")}
        test = {x.tobytes()[:4000] for x in fw.recordings(cls, "test")}
        assert train and test and not (train & test)


@pytest.mark.parametrize("cls", fw.CLASSES)
def test_every_class_sounds_finite_unclipped(cls: str) -> None:
    sc = fw.make_scene(7, 4.0, 1, classes=[cls])
    a = sc.sources[0].audio
    assert np.isfinite(a).all() and np.abs(a).max() < 1.0 and np.sqrt((a ** 2).mean()) > 1e-3
    assert fw.class_of_caption(sc.sources[0].caption) == cls


@pytest.mark.parametrize("cls", ["footsteps", "knocking", "dog", "clock"])
def test_sound_onsets_follow_visual_motion(cls: str) -> None:
    sc = fw.make_scene(5, 8.0, 1, classes=[cls])
    src = sc.sources[0]
    y0, x0, y1, x1 = src.box
    region = sc.frames[:, y0:y1, x0:x1].astype(np.float32)
    motion = np.abs(np.diff(region, axis=0)).mean(axis=(1, 2, 3))  # motion[i]: frame i → i+1
    assert len(src.onsets) >= 3
    for t in src.onsets:
        f = int(round(t * fw.FPS))
        lo, hi = max(0, f - 3), min(len(motion), f + 3)
        # the object is moving within ±2 frames of every onset ...
        assert motion[lo:hi].max() > 0, (cls, t)
        # ... and the audio has energy right after it
        a = int(t * fw.SAMPLE_RATE)
        assert np.abs(src.audio[a:a + 1600]).max() > 0.05


def test_clip_cuts_and_captions() -> None:
    clip = fw.make_clip(3, 20.0, 3)
    assert len(clip.cut_times) == 2 and abs(clip.duration - 20.0) < 1e-6
    assert clip.frames.shape[0] == 20 * fw.FPS
    assert fw.class_of_caption("Ocean waves crash loudly") == "waves"
    assert fw.class_of_caption("a beautiful sunset") is None
