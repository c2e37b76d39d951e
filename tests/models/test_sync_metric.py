"""The synchronisation metric (issue 19 §1): onset detection, one-to-one onset F1 against the
visual event times, and the DeSync-style global offset, on synthetic clicks and on the real
isolated source audio of held-out FoleyWorld scenes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.evaluation.evaluate import EvalConfig, run_evaluation
from models.evaluation.report import write_report
from models.evaluation.sync import SYNC_CLASSES, global_offset, match_onsets, onset_f1, score_track, \
    summarise_sync
from models.evaluation.sync_onsets import detect_onsets, onset_strength
from models.training import foleyworld as fw
from models.training.train import DEFAULT_BUNDLE_DIR

SR = fw.SAMPLE_RATE
TEST = fw.SPLITS["test"].start


def _train(times: np.ndarray, kind: str, seed: int = 0, duration: float = 8.0) -> np.ndarray:
    """Clicks (a 2 ms decaying noise burst) or 60 ms tone bursts at ``times`` over faint noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1e-3, int(duration * SR))
    for t in times:
        a = int(round(t * SR))
        if kind == "click":
            n = 160
            s = rng.normal(0, 1, n) * np.exp(-np.arange(n) / 30)
        else:
            n = int(0.06 * SR)
            s = np.sin(2 * np.pi * rng.uniform(300, 2000) * np.arange(n) / SR) * np.exp(-np.arange(n) / (0.02 * SR))
        x[a:a + n] += s[: len(x) - a]
    return x.astype(np.float32)


def _random_times(rng: np.random.Generator) -> np.ndarray:
    """Off the 10 ms hop grid, 250–700 ms apart, within 0.3–7.5 s."""
    t = 0.3 + np.cumsum(rng.uniform(0.25, 0.7, 30)) + rng.uniform(0, 0.01)
    return t[t < 7.5]


@pytest.mark.parametrize("kind", ["click", "burst"])
@pytest.mark.parametrize("gain", [1.0, 0.01])
def test_onsets_of_clicks_and_bursts_within_a_few_ms(kind: str, gain: float) -> None:
    rng = np.random.default_rng(7)
    for rep in range(3):
        times = _random_times(rng)
        found = detect_onsets(_train(times, kind, rep) * gain, SR).onsets
        assert len(found) == len(times), (kind, rep, found, times)
        err = found - times
        # The hop is 10 ms, so a single onset is off by up to ±5 ms; the bias must be ~0.
        assert np.abs(err).max() <= 0.007, err
        assert abs(np.median(err)) <= 0.0025, err


def test_matching_is_one_to_one_within_the_tolerance() -> None:
    events = [1.0, 2.0, 3.0]
    # Two onsets near 1.0 take one event; 2.09 is outside ±80 ms; 3.05 matches.
    r = onset_f1([0.97, 1.03, 2.09, 3.05], events)
    assert len(match_onsets([0.97, 1.03, 2.09, 3.05], events)) == 2
    assert r["precision"] == pytest.approx(2 / 4) and r["recall"] == pytest.approx(2 / 3)
    assert r["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert sorted(round(abs(x), 3) for x in r["offsets"]) == [0.03, 0.05]
    assert onset_f1([], events)["f1"] == 0.0
    # One onset between two events 100 ms apart takes only one of them.
    assert len(match_onsets([1.05], [1.0, 1.1])) == 1
    assert onset_f1([1.05], [1.0, 1.1])["recall"] == pytest.approx(0.5)
    # A maximum matching, not a greedy nearest one: 1.07 must go to 1.0 so that 1.13 can take 1.2.
    assert len(match_onsets([1.07, 1.13], [1.0, 1.2])) == 2


def _held_out(cls: str, k: int) -> list[fw.Scene]:
    return [fw.make_scene(TEST + 9000 + 10 * i + SYNC_CLASSES.index(cls), 8.0, 1, 32, classes=[cls])
            for i in range(k)]


@pytest.mark.parametrize("cls", ["clock", "knocking"])
def test_real_source_audio_scores_f1_one(cls: str) -> None:
    for sc in _held_out(cls, 3):
        s = sc.sources[0]
        r = score_track(s.audio, SR, s.onsets)
        assert r["f1"] == 1.0, (sc.seed, r["onsets"], s.onsets)
        assert r["median_abs_offset"] <= 0.015
        assert r["desync"] <= 0.02


def test_every_event_class_reaches_the_documented_ceiling() -> None:
    """Mean F1 ≥ 0.85 per class on two held-out scenes each (measured 0.92–1.0 on val)."""
    for cls in SYNC_CLASSES:
        f1 = [score_track(sc.sources[0].audio, SR, sc.sources[0].onsets)["f1"] for sc in _held_out(cls, 2)]
        assert np.mean(f1) >= 0.85, (cls, f1)


def test_shifted_or_shuffled_event_lists_score_near_chance() -> None:
    true, shifted, shuffled = [], [], []
    for cls in ("footsteps", "clock", "bell"):
        scenes = _held_out(cls, 4)
        for i, sc in enumerate(scenes):
            s = sc.sources[0]
            onsets = detect_onsets(s.audio, SR).onsets
            true.append(onset_f1(onsets, s.onsets)["f1"])
            shifted.append(onset_f1(onsets, [t + 0.3 for t in s.onsets])["f1"])
            shuffled.append(onset_f1(onsets, scenes[(i + 1) % len(scenes)].sources[0].onsets)["f1"])
    # Chance for ±80 ms windows around events ~0.5–1.5 s apart is ≈ 2 · 0.08 · rate ≲ 0.3.
    assert np.mean(true) >= 0.95
    assert np.mean(shifted) <= 0.15, shifted
    assert np.mean(shuffled) <= 0.35, shuffled


@pytest.mark.parametrize("shift", [0.23, -0.41, 0.0])
def test_global_offset_recovers_a_known_shift(shift: float) -> None:
    rng = np.random.default_rng(3)
    times = _random_times(rng)
    audio = _train(np.clip(times + shift, 0.05, 7.9), "click", 1)
    lag = global_offset(onset_strength(audio, SR), times)
    assert lag == pytest.approx(shift, abs=0.011)


def test_summary_bootstraps_over_scenes_per_role_and_class() -> None:
    rows = []
    for role, f1 in (("generated", 0.5), ("ceiling", 1.0), ("floor", 0.1)):
        for scene in range(4):
            rows.append({"scene": scene, "class": SYNC_CLASSES[scene % 2], "role": role, "seed": scene,
                         "f1": f1 + 0.01 * scene,
                         "desync": 0.1, "offsets": [0.01 * (scene + 1)] if f1 > 0.2 else []})
    s = summarise_sync(rows)
    assert s["ceiling"]["all"]["f1"]["mean"] == pytest.approx(1.015)
    assert s["ceiling"]["all"]["f1"]["lo"] <= 1.015 <= s["ceiling"]["all"]["f1"]["hi"]
    assert s["generated"][SYNC_CLASSES[0]]["tracks"] == 2
    assert s["generated"]["all"]["median_abs_offset"]["mean"] == pytest.approx(0.025)
    assert s["floor"]["all"]["median_abs_offset"]["n"] == 0
    rows.append({**rows[0], "role": "generated", "scene": 9, "f1": 0.0})  # no floor to pair with
    d = summarise_sync(rows)["f1_generated_minus_floor"]
    assert d["all"]["mean"] == pytest.approx(0.4) and d["all"]["n"] == 4
    assert d[SYNC_CLASSES[1]]["mean"] == pytest.approx(0.4)


def test_eval_run_reports_sync_and_reuses_the_independent_tracks(tmp_path: Path) -> None:
    """`stepfoley eval`'s engine on two held-out scenes (one event source each, 2 Euler steps):
    the own-video track is the independent condition's, only the floors are extra."""
    cfg = EvalConfig(seeds=range(TEST + 4, TEST + 6), methods=("independent",), betas=(0.0,),
                     orders=("descending",), tracks=(2, 2), steps=2, yamnet=False)
    res = run_evaluation(DEFAULT_BUNDLE_DIR, cfg)
    # 2 scenes × 2 independent tracks + one floor per event source (footsteps, clock).
    assert res.timings["tracks_generated"] == 4 + 2
    assert sorted((r["scene"], r["class"], r["role"]) for r in res.sync) == sorted(
        (TEST + i, c, role) for i, c in ((4, "footsteps"), (5, "clock")) for role in ("generated", "ceiling", "floor"))
    floors = {r["scene"]: r["shuffled_scene"] for r in res.sync if r["role"] == "floor"}
    assert floors == {TEST + 4: TEST + 5, TEST + 5: TEST + 4}
    paths, s = write_report(res, tmp_path)
    assert s["sync"]["ceiling"]["all"]["f1"]["mean"] == 1.0
    md = paths["report"].read_text()
    assert "### Synchronisation" in md and "| **all** | floor (another scene's video) | 2 |" in md
    assert paths["sync_rasters"].stat().st_size > 10_000
    assert len(json.loads(paths["json"].read_text())["sync"]) == 6
