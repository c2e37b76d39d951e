"""tasks/mix.py, by what comes out: the limiter reaches its ceiling (not just stays under it),
reports the gain it applied, holds for 5 ms and ramps over 5 ms; ``loudness`` survives clips
too short or too silent to measure; ``mix.flac`` holds the stems summed over the original
soundtrack at the promised level, length and channel count, 48 kHz stems included."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

from tasks.mix import (OUTPUT_RATE, _limit, _window_weights, limit, loudness, mix_to_files, normalise,
                       resample)
from tasks.true_peak import true_peak

RATE = 48000
W = 240  # 5 ms at 48 kHz
THR = 10 ** (-1 / 20)
Q24 = 2.0 ** -23  # one step of the 24-bit FLAC the mix writes


def _db(x: float) -> float:
    return float(20 * np.log10(x))


def _click(n: int = RATE, at: int = RATE // 2, floor: float = 0.1, click: float = 3.0) -> np.ndarray:
    """A DC floor (never zero, so the applied gain is y / x everywhere) and one loud sample."""
    x = np.full(n, floor, np.float32)
    x[at] = click
    return x


def _reference_gain(x: np.ndarray, rate: int) -> np.ndarray:
    """The module docstring's gain, written out: r[n] = min(1, c / tp[n]); its minimum over
    ±5 ms; the 5 ms moving average of that (window [m − w/2, m + w/2)). Away from the ends."""
    w = int(0.005 * rate)
    r = np.minimum(1.0, THR / true_peak(x))
    held = np.array([r[max(0, m - w):m + w + 1].min() for m in range(len(r))])
    return np.array([held[max(0, m - w // 2):m - w // 2 + w].mean() for m in range(len(r))])


# ------------------------------------------------------------------ the limiter


@pytest.mark.parametrize("amp", [0.6, 2.0])  # limiting; limiting plus the final trim
def test_limiter_reaches_the_ceiling_and_reports_the_gain_it_applied(amp: float) -> None:
    rng = np.random.default_rng(1)
    x = (rng.normal(0, amp, RATE) + amp * np.sin(np.arange(RATE) * 0.3)).astype(np.float32)
    y, reduction = limit(x, RATE, -1.0)
    peak = _db(true_peak(y).max())
    assert -1.0 - 0.01 <= peak <= -1.0 + 1e-5  # at the ceiling: not silence, not a -3 dB limiter
    m = np.abs(x) > 1e-2
    applied = y[m].astype(np.float64) / x[m]
    assert applied.max() <= 1.0 + 1e-6 and abs(_db(applied.min()) - reduction) < 1e-3
    assert reduction < -6.0


def test_limiter_leaves_a_signal_under_the_ceiling_alone() -> None:
    x = (0.5 * np.sin(np.arange(RATE) * 0.05)).astype(np.float32)
    y, reduction, peak = _limit(x, RATE, -1.0)
    assert y is x and reduction == 0.0 and peak == true_peak(x).max()
    y, reduction = limit(x, RATE, -7.0)  # the ceiling argument is honoured, in dBTP
    assert -7.01 <= _db(true_peak(y).max()) <= -7.0 + 1e-5 and reduction < -0.9


def test_limiter_gain_is_the_documented_hold_and_smoothing() -> None:
    x = _click()
    y, reduction = limit(x, RATE, -1.0)
    gain = y.astype(np.float64) / x
    ref = _reference_gain(x, RATE)
    mid = slice(2 * W, RATE - 2 * W)
    assert np.allclose(gain[mid], ref[mid], rtol=1e-6, atol=0)
    assert abs(_db(gain.min()) - reduction) < 1e-4


def test_limiter_holds_5ms_and_ramps_over_5ms() -> None:
    at = RATE // 2
    x = _click(at=at)
    y, _ = limit(x, RATE, -1.0)
    gain = y.astype(np.float64) / x
    lowest = gain.min()
    # the click's own 4x-oversampled reach is 2 samples: [at - 1, at]; the gain is held at its
    # lowest while a 5 ms average window sees only the ±5 ms hold ...
    held = np.nonzero(np.isclose(gain, lowest, rtol=1e-6))[0] - at
    assert (held.min(), held.max()) == (-W // 2, W // 2 + 1)
    # ... ramps in and out over 5 ms each (linearly: a moving average of a step) ...
    reduced = np.nonzero(gain < 1.0 - 1e-7)[0] - at
    assert (reduced.min(), reduced.max()) == (-3 * W // 2, 3 * W // 2)
    ramp = gain[at - 3 * W // 2:at - W // 2]
    steps = np.diff(ramp)
    assert np.all(steps < 0) and np.allclose(steps, (lowest - 1.0) / W, rtol=1e-3)
    # ... and is exactly 1 (the input untouched) everywhere else
    far = np.r_[0:at - 3 * W // 2, at + 3 * W // 2 + 1:RATE]
    assert np.array_equal(y[far], x[far])


# ------------------------------------------------------------------ loudness and the gate


def _tone(seconds: float, amp: float = 0.1, rate: int = RATE, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_loudness_of_too_short_or_silent_clips_is_minus_infinity() -> None:
    assert loudness(_tone(0.39), RATE) == float("-inf")  # pyloudnorm raises below one 400 ms block
    assert loudness(np.zeros(RATE, np.float32), RATE) == float("-inf")
    assert loudness(np.zeros(0, np.float32), RATE) == float("-inf")
    one_block = loudness(_tone(0.4), RATE)  # exactly one block is measured
    assert np.isfinite(one_block)
    assert abs(one_block - pyloudnorm.Meter(RATE).integrated_loudness(_tone(0.4).astype(np.float64))) < 1e-9
    x = np.zeros(RATE, np.float32)
    x[RATE // 2:] = _tone(0.5)  # half silent, half tone: measured, not dismissed as silence
    assert np.isfinite(loudness(x, RATE))


def test_normalise_scales_to_the_target_and_gates_what_it_cannot_measure() -> None:
    x = _tone(2.0, 0.05)
    y, lufs, gain_db, gated = normalise(x, RATE, -20.0)
    assert not gated and y.dtype == np.float32
    assert abs(loudness(y, RATE) + 20.0) < 0.01 and abs(gain_db - (-20.0 - lufs)) < 1e-9
    assert np.allclose(y, x * 10 ** (gain_db / 20), rtol=1e-6)
    for take in (_tone(0.3), np.zeros(RATE, np.float32), _tone(2.0, 1e-5)):  # short, silent, < -60 LUFS
        y, lufs, gain_db, gated = normalise(take, RATE, -20.0)
        assert gated and gain_db == float("-inf") and not np.any(y) and y.shape == take.shape
    _, lufs, _, gated = normalise(_tone(2.0, 10 ** (-55 / 20) * 1.4), RATE, -20.0)
    assert -60.0 < lufs < -50.0 and not gated  # quiet but above the gate: kept


# ------------------------------------------------------------------ resampling


def test_same_rate_resampling_is_the_identity_in_float32() -> None:
    x = np.random.default_rng(0).normal(0, 0.3, 12345)
    y = resample(x, RATE, RATE)
    assert y.dtype == np.float32 and np.array_equal(y, x.astype(np.float32))


def test_resampling_keeps_a_tone_and_the_duration() -> None:
    for src in (16000, 32000, 44100, 22050):  # integer factor; 3/2; 160/147; 320/147
        y = resample(_tone(1.0, 0.5, src, 1000.0).astype(np.float64), src, RATE)
        assert len(y) == RATE
        ref = _tone(1.0, 0.5, RATE, 1000.0)
        core = slice(2000, RATE - 2000)  # away from the filter's edge transients
        assert np.max(np.abs(y[core] - ref[core])) < 5e-3


# ------------------------------------------------------------------ what mix.flac holds


def _take(tmp: Path, name: str, x: np.ndarray, rate: int) -> str:
    p = tmp / name
    sf.write(p, x, rate, subtype="FLOAT")
    return str(p)


def _window(i: int, start: float, end: float, tracks: list[tuple[int, str, str]]) -> dict[str, Any]:
    return {"shot_index": 0, "window_index": i, "start_s": start, "end_s": end, "shot_start_s": 0.0,
            "tracks": [{"id": 10 * i + k, "order": k, "prompt_text": p, "stem_uri": u} for k, p, u in tracks]}


def test_mix_flac_is_the_stems_over_the_original_at_the_target_level(tmp_path: Path) -> None:
    """One window, two 16 kHz takes, a 44.1 kHz original shorter than the asset: the mix is
    mono 48 kHz of the asset's length, each stem sits at -20 LUFS, and mix = stems + original
    (resampled, zero after its end) at unity gain, nothing limited."""
    takes = [(1, "hum", _take(tmp_path, "a.wav", _tone(4.0, 0.3, 16000, 220.0), 16000)),
             (2, "whistle", _take(tmp_path, "b.wav", _tone(4.0, 0.01, 16000, 1500.0), 16000))]
    original = _tone(3.0, 0.05, 44100, 600.0)
    res = mix_to_files([_window(0, 0.0, 4.0, takes)], tmp_path / "out",
                       duration_s=4.0, original=original, original_rate=44100)
    mix, sr = sf.read(res.mix_path, always_2d=True)
    assert sr == OUTPUT_RATE == res.sample_rate and mix.shape == (4 * OUTPUT_RATE, 1)
    stems = [sf.read(s["path"], always_2d=True) for s in res.stems]
    assert [s["order"] for s in res.stems] == [1, 2] and [s["title"] for s in res.stems] == ["hum", "whistle"]
    for (x, r), s in zip(stems, res.stems):
        assert r == OUTPUT_RATE and x.shape == (4 * OUTPUT_RATE, 1)
        assert abs(loudness(x[:, 0], r) + 20.0) < 0.1
        assert s["sha256"] and Path(s["path"]).name == f"stem_{s['order']:02d}.flac"
    bed = np.zeros(4 * OUTPUT_RATE)
    bed[:3 * OUTPUT_RATE] = resample(original, 44100, OUTPUT_RATE)
    assert res.limiter_gain_db == 0.0
    assert np.max(np.abs(mix[:, 0] - (stems[0][0][:, 0] + stems[1][0][:, 0] + bed))) < 4 * Q24
    assert res.loudness_lufs is not None and abs(res.loudness_lufs - loudness(mix[:, 0], sr)) < 1e-3
    assert abs(res.true_peak_dbtp - _db(true_peak(mix[:, 0].astype(np.float32)).max())) < 1e-3
    assert [t["track_id"] for t in res.takes] == [1, 2] and not any(t["gated"] for t in res.takes)
    # the original is part of what the mix is made of: another bed, another content hash
    res2 = mix_to_files([_window(0, 0.0, 4.0, takes)], tmp_path / "out2",
                        duration_s=4.0)
    assert res2.content_hash != res.content_hash
    assert [s["sha256"] for s in res2.stems] == [s["sha256"] for s in res.stems]


def test_48k_stems_over_a_loud_48k_original_are_limited_to_the_ceiling(tmp_path: Path) -> None:
    """Stems already at 48 kHz (the same-rate path, bit-exact), crossfaded across two windows,
    over an original soundtrack loud enough that the sum must be limited: the mix reaches
    -1 dBTP and its reported reduction is the gain it applied; the stems stay unlimited."""
    a = _tone(3.0, 0.2, RATE, 300.0)
    b = _tone(3.0, 0.2, RATE, 450.0)
    w = [_window(0, 0.0, 3.0, [(1, "low", _take(tmp_path, "a.wav", a, RATE))]),
         _window(1, 2.0, 5.0, [(1, "low", _take(tmp_path, "b.wav", b, RATE))])]
    original = _tone(6.0, 0.9, RATE, 200.0)  # longer than the asset: cut to its length
    res = mix_to_files(w, tmp_path / "out", duration_s=5.0, original=original)
    mix, sr = sf.read(res.mix_path, always_2d=True)
    assert sr == RATE and mix.shape == (5 * RATE, 1)
    assert -1.0 - 0.02 <= _db(true_peak(mix[:, 0].astype(np.float32)).max()) <= -1.0 + 1e-3
    assert -1.0 - 0.02 <= res.true_peak_dbtp <= -1.0 + 1e-5
    (stem, _), = [sf.read(s["path"], always_2d=True) for s in res.stems]
    unlimited = stem[:, 0] + original[:5 * RATE]
    m = np.abs(unlimited) > 0.05
    applied = mix[m, 0] / unlimited[m]
    assert res.limiter_gain_db < -1.0 and abs(_db(applied.min()) - res.limiter_gain_db) < 0.01
    assert applied.max() <= 1.0 + 1e-4
    # same rate: each take is only scaled (and crossfaded), sample for sample
    g = 10 ** (res.takes[0]["gain_db"] / 20)
    assert np.max(np.abs(stem[:2 * RATE, 0] - a[:2 * RATE] * g)) < 2 * Q24
    g = 10 ** (res.takes[1]["gain_db"] / 20)
    assert np.max(np.abs(stem[3 * RATE:, 0] - b[RATE:] * g)) < 2 * Q24
    assert len(res.stems) == 1 and res.stems[0]["title"] == "low"


def test_silent_and_short_takes_are_gated_and_a_silent_mix_has_no_loudness(tmp_path: Path) -> None:
    w = [_window(0, 0.0, 2.0, [(1, "nothing", _take(tmp_path, "z.wav", np.zeros(2 * 16000, np.float32), 16000)),
                               (2, "blip", _take(tmp_path, "s.wav", _tone(0.2, 0.5, 16000), 16000))])]
    res = mix_to_files(w, tmp_path / "out", duration_s=2.0)
    assert [(t["gated"], t["gain_db"], t["loudness_lufs"]) for t in res.takes] == [(True, None, None)] * 2
    mix, sr = sf.read(res.mix_path, always_2d=True)
    assert mix.shape == (2 * RATE, 1) and not np.any(mix)
    # digital silence reports the floor of 20·log10(1e-12): a number the database can store
    assert res.loudness_lufs is None and res.true_peak_dbtp == -240.0 and res.limiter_gain_db == 0.0


# ------------------------------------------------------------------ the timeline


def _w(index: int, wi: int, start: float, end: float, **kw: Any) -> dict[str, Any]:
    return {"shot_index": index, "window_index": wi, "start_s": start, "end_s": end, "tracks": [], **kw}


def test_crossfade_weights_are_equal_power_sin_cos_over_the_overlap() -> None:
    rate = 1000
    ws = [_w(0, 0, 0.0, 3.0), _w(0, 1, 2.0, 5.0), _w(0, 2, 4.5, 6.0)]
    g = _window_weights(ws, rate)
    assert [len(g[i]) for i in range(3)] == [3000, 3000, 1500]
    u = np.arange(1000) / 1000  # u = (t − a)/D on the overlap, from 0 up to (D−1)/D
    assert np.array_equal(g[0][:2000], np.ones(2000))
    assert np.allclose(g[0][2000:], np.cos(np.pi / 2 * u), rtol=0, atol=1e-15)
    assert np.allclose(g[1][:1000], np.sin(np.pi / 2 * u), rtol=0, atol=1e-15)
    assert np.array_equal(g[1][1000:2500], np.ones(1500))
    u2 = np.arange(500) / 500
    assert np.allclose(g[1][2500:], np.cos(np.pi / 2 * u2), rtol=0, atol=1e-15)
    assert np.allclose(g[2][:500], np.sin(np.pi / 2 * u2), rtol=0, atol=1e-15)
    assert np.array_equal(g[2][500:], np.ones(1000))
    # power is constant through every join, sample by sample
    assert np.allclose(g[0][2000:] ** 2 + g[1][:1000] ** 2, 1.0, atol=1e-15)


def test_fades_follow_the_picture_only_at_a_shots_ends() -> None:
    rate = 1000
    ws = [_w(0, 0, 0.0, 3.0, start_transition="fade", start_transition_s=0.5),
          _w(0, 1, 2.0, 4.0, start_transition="fade", start_transition_s=0.5,
             end_transition="fade", end_transition_s=0.25),
          _w(1, 0, 4.5, 5.0, start_transition="fade", start_transition_s=2.0,  # longer than the window
             end_transition="cut", end_transition_s=0.3)]
    g = _window_weights(ws, rate)
    u = np.arange(500) / 500
    assert np.allclose(g[0][:500], np.sin(np.pi / 2 * u), atol=1e-15)  # the shot fades in
    assert np.array_equal(g[0][500:2000], np.ones(1500))
    assert np.allclose(g[1][:1000], np.sin(np.pi / 2 * np.arange(1000) / 1000), atol=1e-15)  # no fade-in
    assert np.allclose(g[1][-250:], np.cos(np.pi / 2 * np.arange(250) / 250), atol=1e-15)  # the shot fades out
    assert np.array_equal(g[1][1000:1750], np.ones(750))
    assert np.allclose(g[2], np.sin(np.pi / 2 * np.arange(500) / 500), atol=1e-15)  # clipped to the window
    # a window in mid-shot ignores transition facts: only the shot's first and last fade
    mid = _window_weights([_w(0, 0, 0.0, 2.0), _w(0, 1, 2.0, 4.0, start_transition="fade",
                                                    start_transition_s=0.5, end_transition="fade",
                                                    end_transition_s=0.5), _w(0, 2, 4.0, 6.0)], rate)
    assert np.array_equal(mid[1], np.ones(2000))


def test_windows_of_two_shots_crossfade_only_when_they_overlap() -> None:
    rate = 1000
    g = _window_weights([_w(0, 0, 0.0, 3.0), _w(1, 0, 2.5, 5.0)], rate)  # a dissolve
    assert np.allclose(g[0][2500:] ** 2 + g[1][:500] ** 2, 1.0, atol=1e-15) and g[1][0] == 0.0
    g = _window_weights([_w(0, 0, 0.0, 3.0), _w(1, 0, 3.0, 5.0)], rate)  # a cut
    assert np.array_equal(g[0], np.ones(3000)) and np.array_equal(g[1], np.ones(2000))


def test_takes_land_on_the_timeline_in_time_order_cut_to_their_window(tmp_path: Path) -> None:
    """Windows given out of order; a take longer than its window; a window running past the
    asset's end; the odd sample count of a duration that is not a whole number of samples."""
    x = _tone(2.5, 0.1, 16000, 300.0)
    y = _tone(2.5, 0.1, 16000, 500.0)
    ws = [_window(1, 3.0, 5.0, [(1, "b", _take(tmp_path, "y.wav", y, 16000))]),
          _window(0, 0.0, 2.0, [(1, "a", _take(tmp_path, "x.wav", x, 16000))])]
    duration = 4.5 + 1 / 96000  # 216001 output samples, one more than the takes' 72000 x 3
    res = mix_to_files(ws, tmp_path / "out", duration_s=duration)
    stem, sr = sf.read(res.stems[0]["path"])
    assert len(stem) == round(duration * OUTPUT_RATE) and len(sf.read(res.mix_path)[0]) == len(stem)
    g = [10 ** (t["gain_db"] / 20) for t in res.takes]
    assert [t["track_id"] for t in res.takes] == [1, 11]  # the earlier window's take first
    ref = np.zeros(len(stem))
    ref[:2 * sr] = resample(x[:32000].astype(np.float64) * g[0], 16000, sr)[:2 * sr]
    ref[3 * sr:3 * sr + 72000] = resample(y[:24000].astype(np.float64) * g[1], 16000, sr)
    assert len(stem) == 3 * sr + 72000 + 1 and stem[-1] == 0.0  # the odd sample: zero padding
    inner = np.r_[200:2 * sr - 200, 3 * sr + 200:len(stem) - 200]  # away from the cut edges' ringing
    assert np.max(np.abs(stem[inner] - ref[inner])) < 1e-4
    assert np.max(np.abs(stem[2 * sr + 200:3 * sr - 200])) < 1e-4  # the gap stays silent
    assert res.stems[0]["title"] == "a | b"


def test_stem_titles_name_each_prompt_once_within_200_characters(tmp_path: Path) -> None:
    t = _take(tmp_path, "t.wav", _tone(1.0, 0.1, 16000), 16000)
    long = "x" * 300
    ws = [_window(0, 0.0, 1.0, [(1, "rain", t), (2, long, t)]),
          _window(1, 1.0, 2.0, [(1, "rain", t), (2, long, t)]),
          _window(2, 2.0, 3.0, [(1, "heavy rain", t)])]
    res = mix_to_files(ws, tmp_path / "out", duration_s=3.0)
    assert [s["title"] for s in res.stems] == ["rain | heavy rain", "x" * 200]


def test_the_gate_is_at_minus_60_lufs_and_take_facts_are_the_measurements(tmp_path: Path) -> None:
    quiet = _tone(2.0, 10 ** (-65 / 20) * 1.4, 16000)  # ≈ −65 LUFS: gated
    kept = _tone(2.0, 10 ** (-55 / 20) * 1.4, 16000)   # ≈ −55 LUFS: scaled up
    ws = [_window(0, 0.0, 2.0, [(1, "q", _take(tmp_path, "q.wav", quiet, 16000)),
                                (2, "k", _take(tmp_path, "k.wav", kept, 16000))])]
    res = mix_to_files(ws, tmp_path / "out", duration_s=2.0, target_lufs=-23.0)
    q, k = res.takes
    assert q["gated"] and q["gain_db"] is None and -66.5 < q["loudness_lufs"] < -65.0
    assert not k["gated"] and abs(k["loudness_lufs"] - loudness(kept, 16000)) < 1e-9
    assert abs(k["gain_db"] - (-23.0 - k["loudness_lufs"])) < 1e-9
    assert abs(loudness(sf.read(res.stems[1]["path"])[0], OUTPUT_RATE) + 23.0) < 0.1
    assert not np.any(sf.read(res.stems[0]["path"])[0])


def test_an_asset_with_no_takes_is_its_original_and_the_result_serialises(tmp_path: Path) -> None:
    original = _tone(2.0, 0.3, RATE, 700.0)
    res = mix_to_files([_w(0, 0, 0.0, 2.0)], str(tmp_path / "out"), duration_s=2.0, original=original)
    assert res.mix_path == tmp_path / "out" / "mix.flac" and res.mix_path.is_file()
    mix, sr = sf.read(res.mix_path)
    assert res.stems == [] and res.takes == [] and sr == RATE
    assert np.max(np.abs(mix - original)) < Q24 and res.limiter_gain_db == 0.0
    d = json.loads(json.dumps(res.to_json()))
    assert d["mix_path"] == str(res.mix_path) and d["sha256"] == res.sha256 and d["stems"] == []


def test_the_content_hash_is_stems_target_and_bed(tmp_path: Path) -> None:
    t = _take(tmp_path, "t.wav", _tone(1.0, 0.1, 16000), 16000)
    original = _tone(1.0, 0.05, RATE, 900.0)
    res = mix_to_files([_window(0, 0.0, 1.0, [(1, "a", t)])], tmp_path / "out", duration_s=1.0,
                       original=original, target_lufs=-18.0)
    bed = resample(original, RATE, RATE)
    blob = json.dumps({"stems": [res.stems[0]["sha256"]], "target": -18.0,
                       "original": hashlib.sha256(bed.tobytes()).hexdigest()}, sort_keys=True)
    assert res.content_hash == hashlib.sha256(blob.encode()).hexdigest()[:16]


def test_a_window_starting_one_sample_before_the_end_still_sounds(tmp_path: Path) -> None:
    t = _take(tmp_path, "t.wav", np.roll(_tone(1.0, 0.3, 16000, 4000.0), -1), 16000)  # a crest at sample 0
    res = mix_to_files([_window(0, 2.0 - 1 / 16000, 3.0, [(1, "a", t)])], tmp_path / "out", duration_s=2.0)
    stem, _ = sf.read(res.stems[0]["path"])
    assert len(stem) == 2 * RATE and np.any(stem[-3:]) and not np.any(stem[:-40])
