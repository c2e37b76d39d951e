"""Mix: stems on the asset timeline, loudness-normalised, over the original bed, peak-safe.

1. **Per take loudness.** Each generated take (window w, track k) is measured with the
   ITU-R BS.1770 integrated loudness L (pyloudnorm) and scaled by g = 10^((T − L)/20) to the
   target T (−20 LUFS, as the paper). A take below −60 LUFS is near-silence: it is kept
   silent (g = 0) and flagged instead of being amplified into noise.
2. **Timeline with equal-power crossfades.** Consecutive windows of one shot overlap; in an
   overlap of length D starting at a, the earlier take is weighted cos(π/2·u) and the later
   sin(π/2·u), u = (t − a)/D, so cos² + sin² = 1 keeps the power of uncorrelated takes
   constant across the join. The last window of a shot and the first of the next overlap
   only across a dissolve (tasks/scenes.py extends both shots' sound over it) and are
   crossfaded the same way. Over a fade the sound follows the picture instead: the shot's
   last window fades out as cos(π/2·u) over the fade-out (it ends where the picture is
   black) and the next shot's first window fades in as sin(π/2·u) over the fade-in, with
   nothing in between: no hard switch, no sound over the black. Stem k of the asset is
   Σ_w weight_w(t) · take_{w,k}(t).
3. **Resampling** from the codec rate to 48 kHz with a polyphase FIR (scipy
   ``resample_poly``, Kaiser window), i.e. proper band-limited interpolation.
4. **Sum** over the original soundtrack at unity gain (what the footage already had stays as
   it was), then **true-peak limit** to −1 dBTP: the true peak is estimated on a 4×
   oversampled signal (BS.1770 Annex 2, tasks/true_peak.py); the gain needed at each sample,
   r[n] = min(1, 10^(−1/20) / tp[n]), goes through a minimum filter of ±5 ms (look-ahead and
   hold) and a 5 ms moving average, so the gain ramps smoothly and never exceeds r.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from math import gcd
from pathlib import Path
from typing import Any

import numpy as np
import pyloudnorm
import soundfile as sf
from scipy.ndimage import minimum_filter1d, uniform_filter1d
from scipy.signal import resample_poly

from tasks.audio_files import fit_length, write_flac_atomic
from tasks.media_paths import from_uri
from tasks.polyphase import per_block
from tasks.true_peak import true_peak

OUTPUT_RATE = 48000
GATE_LUFS = -60.0
TRUE_PEAK_DBTP = -1.0


@dataclass
class MixResult:
    mix_path: Path
    sha256: str
    loudness_lufs: float | None
    true_peak_dbtp: float
    sample_rate: int
    content_hash: str
    stems: list[dict[str, Any]] = field(default_factory=list)
    takes: list[dict[str, Any]] = field(default_factory=list)
    limiter_gain_db: float = 0.0

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["mix_path"] = str(self.mix_path)
        return d


def loudness(x: np.ndarray, rate: int) -> float:
    """Integrated loudness (LUFS); −inf for silence or clips shorter than one 400 ms block."""
    if x.size < int(0.4 * rate) or not np.any(x):
        return float("-inf")
    return float(pyloudnorm.Meter(rate).integrated_loudness(x.astype(np.float64)))


def normalise(x: np.ndarray, rate: int, target_lufs: float) -> tuple[np.ndarray, float, float, bool]:
    """(scaled take, measured LUFS, gain dB, gated) — see step 1."""
    lufs = loudness(x, rate)
    if not np.isfinite(lufs) or lufs < GATE_LUFS:
        return np.zeros_like(x), lufs, float("-inf"), True
    gain_db = target_lufs - lufs
    return (x * 10 ** (gain_db / 20)).astype(np.float32), lufs, gain_db, False


def limit(x: np.ndarray, rate: int, ceiling_dbtp: float = TRUE_PEAK_DBTP) -> tuple[np.ndarray, float]:
    """True-peak limiter (step 4); returns the signal and its largest gain reduction (dB)."""
    y, reduction, _ = _limit(x, rate, ceiling_dbtp)
    return y, reduction


def _limit(x: np.ndarray, rate: int, ceiling_dbtp: float) -> tuple[np.ndarray, float, float]:
    """``limit`` plus the output's true peak (linear), so the caller need not oversample the
    output once more when the limiter already did; only after the final trim it must."""
    thr = 10 ** (ceiling_dbtp / 20)
    tp = true_peak(x)
    peak = float(tp.max())
    if peak <= thr:
        return x, 0.0, peak
    need = np.minimum(1.0, thr / np.maximum(tp, 1e-12))
    del tp
    width = max(1, int(0.005 * rate))
    gain = uniform_filter1d(minimum_filter1d(need, 2 * width + 1), width)
    y = (x * gain).astype(np.float32)
    # np.float64, not float: the trim factor must stay a float64 scalar (NEP 50), or y would be
    # scaled in float32 arithmetic and round differently.
    residual = true_peak(y).max()
    if residual > thr:  # interpolation overshoot between samples: one final trim
        y *= thr / residual
        gain *= thr / residual
        residual = true_peak(y).max()
    return y, float(20 * np.log10(gain.min())), float(residual)


def resample(x: np.ndarray, src: int, dst: int) -> np.ndarray:
    if src == dst:
        return x.astype(np.float32)
    g = gcd(src, dst)
    if src // g == 1:  # integer factor (the codec's 16 kHz → 48 kHz): block-wise, same values
        return per_block(x, lambda y: y, dst // g, np.float32)
    return resample_poly(x, dst // g, src // g).astype(np.float32)


def _window_weights(windows: list[dict[str, Any]], rate: int) -> dict[int, np.ndarray]:
    """Equal-power crossfade weights of each window over its own span (step 2)."""
    out: dict[int, np.ndarray] = {}
    for i, w in enumerate(windows):
        n = int(round((w["end_s"] - w["start_s"]) * rate))
        g = np.ones(n, np.float64)
        prev = windows[i - 1] if i > 0 else None
        nxt = windows[i + 1] if i + 1 < len(windows) else None
        # windows of one shot overlap by design; those of two shots only across a dissolve
        if prev is not None and prev["end_s"] > w["start_s"]:
            d = min(n, int(round((prev["end_s"] - w["start_s"]) * rate)))
            g[:d] *= np.sin(np.pi / 2 * np.linspace(0, 1, d, endpoint=False))
        if nxt is not None and w["end_s"] > nxt["start_s"]:
            d = min(n, int(round((w["end_s"] - nxt["start_s"]) * rate)))
            g[n - d:] *= np.cos(np.pi / 2 * np.linspace(0, 1, d, endpoint=False))
        first = prev is None or prev["shot_index"] != w["shot_index"]
        last = nxt is None or nxt["shot_index"] != w["shot_index"]
        if first and w.get("start_transition") == "fade" and w.get("start_transition_s"):
            d = min(n, int(round(float(w["start_transition_s"]) * rate)))
            g[:d] *= np.sin(np.pi / 2 * np.linspace(0, 1, d, endpoint=False))
        if last and w.get("end_transition") == "fade" and w.get("end_transition_s"):
            d = min(n, int(round(float(w["end_transition_s"]) * rate)))
            g[n - d:] *= np.cos(np.pi / 2 * np.linspace(0, 1, d, endpoint=False))
        out[i] = g
    return out


def mix_to_files(windows: list[dict[str, Any]], out_dir: Path, *, duration_s: float,
                 target_lufs: float = -20.0, original: np.ndarray | None = None,
                 original_rate: int = OUTPUT_RATE) -> MixResult:
    """Mix the current takes of ``windows`` (repository rows with ``tracks``) into files."""
    windows = sorted(windows, key=lambda w: (w["start_s"], w["shot_index"], w["window_index"]))
    takes = [(wi, t) for wi, w in enumerate(windows) for t in w["tracks"]]
    rate = None
    for _, t in takes:
        rate = sf.info(from_uri(t["stem_uri"])).samplerate
        break
    rate = rate or 16000
    total = int(round(duration_s * rate))
    weights = _window_weights(windows, rate)
    orders = sorted({t["order"] for _, t in takes})
    stems = {k: np.zeros(total, np.float64) for k in orders}
    titles: dict[int, list[str]] = {k: [] for k in orders}
    take_facts = []
    for wi, t in takes:
        w = windows[wi]
        x, _ = sf.read(from_uri(t["stem_uri"]), dtype="float32", always_2d=False)
        x, lufs, gain_db, gated = normalise(x, rate, target_lufs)
        a = int(round(w["start_s"] * rate))
        g = weights[wi]
        m = min(len(g), len(x), total - a)
        if m > 0:
            stems[t["order"]][a:a + m] += x[:m] * g[:m]
        if t["prompt_text"] not in titles[t["order"]]:
            titles[t["order"]].append(t["prompt_text"])
        take_facts.append({"track_id": t.get("id"), "loudness_lufs": lufs if np.isfinite(lufs) else None,
                           "gain_db": gain_db if np.isfinite(gain_db) else None, "gated": gated})
    n_out = int(round(duration_s * OUTPUT_RATE))
    bed = (fit_length(resample(original, original_rate, OUTPUT_RATE), n_out) if original is not None
           else np.zeros(n_out, np.float32))
    mix = bed.astype(np.float64).copy()
    out_dir = Path(out_dir)
    stem_files = []
    for k in orders:
        s = resample(stems[k], rate, OUTPUT_RATE)[:n_out]
        s = np.pad(s, (0, n_out - len(s)))
        mix += s
        path = out_dir / f"stem_{k:02d}.flac"
        stem_files.append({"order": k, "path": str(path), "title": " | ".join(titles[k])[:200],
                           "sha256": write_flac_atomic(path, s, OUTPUT_RATE)})
    mixed, reduction, peak = _limit(mix.astype(np.float32), OUTPUT_RATE, TRUE_PEAK_DBTP)
    tp = float(20 * np.log10(max(peak, 1e-12)))
    lufs = loudness(mixed, OUTPUT_RATE)
    content = hashlib.sha256(json.dumps(
        {"stems": [f["sha256"] for f in stem_files], "target": target_lufs,
         "original": hashlib.sha256(bed.tobytes()).hexdigest()}, sort_keys=True).encode()).hexdigest()[:16]
    mix_path = out_dir / "mix.flac"
    sha = write_flac_atomic(mix_path, mixed, OUTPUT_RATE)
    return MixResult(mix_path, sha, lufs if np.isfinite(lufs) else None, tp, OUTPUT_RATE, content,
                     stem_files, take_facts, reduction)
