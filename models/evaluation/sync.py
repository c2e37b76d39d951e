"""Audio–visual synchronisation of a track: onset F1, matched offset, a DeSync-style lag.

FoleyWorld knows when every visual event happens (``Source.onsets``: the foot lands, the fist
meets the door, the bell reaches the end of its swing, the dog's head jerks, the clock hand
jumps, the rooster's comb rises), so a track's timing can be scored against the truth.

**Classes.** ``SYNC_CLASSES`` = FoleyWorld's ``EVENT_CLASSES`` (dog, footsteps, knocking, bell,
clock, rooster): the sources whose sound is a train of discrete events placed at visual event
times. The other five (rain, waves, fire, helicopter, chainsaw) are continuous textures whose
*loudness* follows a slow motion signal; they have no onsets to match, so onset F1 is not
defined for them. Each event class's real audio reaches a high F1 with the detector below
(the ceiling, ``docs/evaluation.md``), which is the other half of the reason: a class whose
real audio the detector cannot time would say nothing about the generator.

**Onset F1.** With detected onsets Ô = {ô_i} (``models.evaluation.sync_onsets``) and the
visual event times E = {e_j} of the prompted source, a *one-to-one* matching pairs ô_i with
e_j only if |ô_i − e_j| ≤ τ = 80 ms. In one dimension the greedy sweep over both sorted lists
(pair the earliest unmatched onset and event when they lie within τ; otherwise drop whichever
of the two is earlier) yields a maximum matching (exchange argument: the earliest event can
always take the earliest onset in its window without reducing the count). With |match| = m:

    P = m / |Ô|,   R = m / |E|,   F1 = 2 P R / (P + R)  (0 when m = 0)

**Offset.** The signed offsets ô_i − e_j of matched pairs; a track's figure is the median of
their absolute values (ms), pooled over tracks in a summary.

**Global offset (DeSync-style).** The onset-strength envelope F(t) (spectral flux, 100 Hz) is
cross-correlated with the event train g(t) = Σ_j N(t; e_j, σ²), σ = 20 ms, sampled on F's
time grid; both are mean-removed:

    c(ℓ) = Σ_t (F(t + ℓ) − F̄)(g(t) − ḡ),    ℓ ∈ [−1 s, +1 s] in 10 ms steps,
    lag = argmax_ℓ c(ℓ),   DeSync = |lag|  (seconds; 0 = in sync)

Like the paper's DeSync (Synchformer's predicted offset, averaged), lower is better; unlike it,
the reference here is the exact visual event train, not a learned audio–visual model. For
periodic sources the correlation is periodic too (the clock ticks at 1 Hz), so a track that is
exactly one period late reads as in sync: F1 is the primary number, DeSync its companion.

**Summary.** Per role (``generated``: the bundle, prompted source's caption, the scene's own
video; ``ceiling``: the real isolated source audio; ``floor``: the same prompt and seed with
*another* scene's video, the shuffled-video control), per class and overall: mean F1 and
mean DeSync with 95 % percentile-bootstrap intervals over scenes
(``models.evaluation.metrics.bootstrap_ci``), and the median |offset| of matched onsets with
its interval from resampling scenes (``metrics.bootstrap_statistic``). The paired difference
F1(generated) − F1(floor) of the same source, prompt and seed (only the video differs) gets its
own interval: what the picture adds, with scene difficulty and the prompt's prior cancelled.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

import numpy as np

from models.evaluation.metrics import bootstrap_ci, bootstrap_statistic
from models.evaluation.sync_onsets import OnsetResult, detect_onsets
from models.training import foleyworld as fw

SYNC_CLASSES: tuple[str, ...] = tuple(c for c in fw.CLASSES if c in fw.EVENT_CLASSES)
TOLERANCE = 0.08
MAX_LAG = 1.0
TRAIN_SIGMA = 0.02
ROLES = ("generated", "ceiling", "floor")


def match_onsets(onsets: Sequence[float], events: Sequence[float],
                 tol: float = TOLERANCE) -> list[tuple[float, float]]:
    """Maximum one-to-one matching ``[(onset, event), …]`` with |onset − event| ≤ tol."""
    o, e = sorted(float(x) for x in onsets), sorted(float(x) for x in events)
    i = j = 0
    pairs = []
    while i < len(o) and j < len(e):
        if abs(o[i] - e[j]) <= tol:
            pairs.append((o[i], e[j]))
            i += 1
            j += 1
        elif o[i] < e[j]:
            i += 1
        else:
            j += 1
    return pairs


def onset_f1(onsets: Sequence[float], events: Sequence[float], tol: float = TOLERANCE) -> dict[str, Any]:
    """Precision, recall, F1 and the signed offsets (s) of the matched pairs."""
    pairs = match_onsets(onsets, events, tol)
    m = len(pairs)
    p = m / len(onsets) if len(onsets) else 0.0
    r = m / len(events) if len(events) else 0.0
    f1 = 2 * p * r / (p + r) if m else 0.0
    return {"f1": f1, "precision": p, "recall": r, "offsets": [a - b for a, b in pairs]}


def event_train(events: Sequence[float], times: np.ndarray, sigma: float = TRAIN_SIGMA) -> np.ndarray:
    """g(t) = Σ_j exp(−(t − e_j)² / 2σ²) on ``times``."""
    t = np.asarray(times, np.float64)[:, None]
    e = np.asarray(list(events), np.float64)[None, :]
    if e.size == 0:
        return np.zeros(len(t))
    return np.exp(-0.5 * ((t - e) / sigma) ** 2).sum(1)


def global_offset(strength: OnsetResult, events: Sequence[float], max_lag: float = MAX_LAG) -> float:
    """argmax_ℓ c(ℓ) (s): positive when the audio is late against the events."""
    f = strength.strength - strength.strength.mean()
    g = event_train(events, strength.times())
    g = g - g.mean()
    k = int(round(max_lag * strength.frame_rate))
    n = len(f)
    lags = np.arange(-k, k + 1)
    c = np.array([float(np.dot(f[max(0, l):n + min(0, l)], g[max(0, -l):n - max(0, l)])) for l in lags])
    # Of equal maxima (a flat envelope) the smallest |lag| wins: no evidence of an offset.
    best = lags[np.flatnonzero(c >= c.max() - 1e-12)]
    return float(best[np.argmin(np.abs(best))] / strength.frame_rate)


def score_track(wave: np.ndarray, sr: int, events: Sequence[float], tol: float = TOLERANCE) -> dict[str, Any]:
    """Every per-track number: detected onsets, P/R/F1, matched offsets, lag and DeSync."""
    r = detect_onsets(wave, sr)
    out = onset_f1(r.onsets, events, tol)
    lag = global_offset(r, events)
    out.update({"onsets": [float(x) for x in r.onsets], "events": [float(x) for x in events],
                "lag": lag, "desync": abs(lag),
                "median_abs_offset": float(np.median(np.abs(out["offsets"]))) if out["offsets"] else float("nan")})
    return out


def _median_offset_ci(rows: list[dict[str, Any]]) -> dict[str, float]:
    by_scene: dict[int, list[float]] = defaultdict(list)
    for r in rows:
        by_scene[r["scene"]].extend(abs(x) for x in r["offsets"])
    # Scenes without a match add nothing to the pooled median; leaving them out of the
    # resampling keeps every bootstrap replicate defined.
    groups = [np.asarray(by_scene[k]) for k in sorted(by_scene) if by_scene[k]]
    if not groups:
        return {"mean": float("nan"), "lo": float("nan"), "hi": float("nan"), "n": 0}

    def stat(idx: np.ndarray) -> float:
        return float(np.median(np.concatenate([groups[i] for i in idx])))

    ci = bootstrap_statistic(len(groups), stat, n=1000)
    ci["n"] = int(sum(len(g) for g in groups))
    return ci


def summarise_sync(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """{role: {class | "all": {f1, desync, median_abs_offset (CIs), tracks}}} over rows that carry
    ``scene``, ``class``, ``role`` and the fields of :func:`score_track`."""
    out: dict[str, Any] = {}
    for role in ROLES:
        mine = [r for r in rows if r["role"] == role]
        if not mine:
            continue
        table = {}
        for cls in [*SYNC_CLASSES, "all"]:
            sel = [r for r in mine if cls == "all" or r["class"] == cls]
            if not sel:
                continue
            scenes: dict[int, list[dict[str, Any]]] = defaultdict(list)
            for r in sel:
                scenes[r["scene"]].append(r)
            groups = [scenes[k] for k in sorted(scenes)]
            table[cls] = {"f1": bootstrap_ci([[r["f1"] for r in g] for g in groups]),
                          "desync": bootstrap_ci([[r["desync"] for r in g] for g in groups]),
                          "median_abs_offset": _median_offset_ci(sel), "tracks": len(sel)}
        out[role] = table
    floor = {(r["scene"], r["class"], r["seed"]): r["f1"] for r in rows if r["role"] == "floor"}
    pairs = [{"scene": r["scene"], "class": r["class"], "d": r["f1"] - floor[(r["scene"], r["class"], r["seed"])]}
             for r in rows if r["role"] == "generated" and (r["scene"], r["class"], r["seed"]) in floor]
    if pairs:
        table = {}
        for cls in [*SYNC_CLASSES, "all"]:
            scenes: dict[int, list[float]] = defaultdict(list)
            for p in pairs:
                if cls == "all" or p["class"] == cls:
                    scenes[p["scene"]].append(p["d"])
            if scenes:
                table[cls] = bootstrap_ci([scenes[k] for k in sorted(scenes)])
        out["f1_generated_minus_floor"] = table
    return out


def markdown_table(summary: dict[str, Any]) -> list[str]:
    """Rows class × role: F1 ↑, median |offset| (ms) ↓, DeSync (s) ↓, with intervals."""
    def cell(ci: dict[str, float] | None, scale: float, digits: int) -> str:
        if not ci or not ci.get("n") or not np.isfinite(ci["mean"]):
            return "–"
        return f"{ci['mean'] * scale:.{digits}f} [{ci['lo'] * scale:.{digits}f}, {ci['hi'] * scale:.{digits}f}]"

    lines = ["| class | track | n | onset F1 (±80 ms) ↑ | median \\|offset\\| of matches (ms) ↓ | DeSync (s) ↓ |",
             "|---|---|---|---|---|---|"]
    label = {"generated": "generated (own video)", "ceiling": "ceiling (real source)",
             "floor": "floor (another scene's video)"}
    for cls in [*SYNC_CLASSES, "all"]:
        for role in ROLES:
            row = summary.get(role, {}).get(cls)
            if row is None:
                continue
            name = f"**{cls}**" if cls == "all" else cls
            lines.append(f"| {name} | {label[role]} | {row['tracks']} | {cell(row['f1'], 1, 2)} | "
                         f"{cell(row['median_abs_offset'], 1000, 0)} | {cell(row['desync'], 1, 2)} |")
    paired = summary.get("f1_generated_minus_floor")
    if paired:
        lines += ["", "Paired F1(generated) − F1(floor), same source, prompt and seed (what the video adds): " +
                  "; ".join(f"{c} {cell(ci, 1, 2)}" for c, ci in paired.items()) + "."]
    return lines
