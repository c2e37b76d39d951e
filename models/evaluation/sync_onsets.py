"""Onset detection on a waveform: log-mel spectral flux, adaptive threshold, peak picking.

Spectrogram: x at 16 kHz, Hann window of N = 512 samples (32 ms), hop H = 160 (10 ms), power
spectrum |X_n(f)|², M = 40 HTK-mel bands (40 Hz – 7.6 kHz, the evaluator's filterbank), in dB
with a floor relative to the loudest bin of the clip (so the detector is gain-invariant and a
quiet noise bed never gains onsets by normalisation):

    L_n(m) = 10 log10 max(S_n(m), 10^{−D/10} · max S),      D = 50 dB

Onset strength (half-wave rectified spectral flux, mean over bands, in dB per frame):

    F_n = (1/M) Σ_m max(0, L_n(m) − L_{n−1}(m))

Adaptive threshold (Bello et al. 2005 style, a moving median plus a constant):

    θ_n = δ + median(F_{n−w} … F_{n+w}),      w = 10 frames (±100 ms),  δ = 4 dB

An onset is frame n with F_n > θ_n and F_n = max(F_{n−2} … F_{n+2}) (a local maximum within
±20 ms); of two onsets closer than the minimum inter-onset interval Δ = 100 ms the stronger is
kept. Frame n's time is its window's centre, (n·H + N/2)/sr, plus a fixed correction c = 6 ms:
on isolated clicks and tone bursts at random (off-grid) times the uncorrected times are early
by 7.0 and 4.8 ms on average (the Hann window has taken in enough of the attack about half a
hop before its centre reaches it); ``tests/models/test_sync_metric.py`` holds the corrected
detector to a median error ≤ 2.5 ms and a maximum within the hop's quantisation (±5 ms) plus
2 ms.

The parameters were chosen on FoleyWorld's real isolated source audio of ``val``-split scenes
(one source, 10 per event class; their event times are known), onset F1 within ±80 ms:

    setting (δ dB, D dB, Δ ms)   bell  clock  dog   footsteps  knocking  rooster   all
    1.5, 70, 100                 0.83  1.00   0.89  0.79       0.92      0.53      0.83
    3,   70, 100                 0.83  1.00   0.93  0.89       1.00      0.68      0.89
    3,   50, 100                 0.95  1.00   0.96  0.89       1.00      0.78      0.93
    4,   50, 100  (chosen)       0.98  0.99   0.92  0.96       1.00      0.93      0.96
    5,   50, 100                 1.00  0.99   0.77  1.00       1.00      0.92      0.95
    3,   40, 100                 1.00  0.98   0.55  0.90       1.00      0.83      0.88

Recall is ≈ 1 from δ ≤ 4 dB; what costs F1 is precision: the syllables of a crow, the beating
partials of a bell's tail and the heel-then-toe of a step are onsets *within* one event. A
shallower floor (D = 50 dB) hides the tails' beating, a higher δ the secondary syllables; at
δ = 5 dB or D = 40 dB the softer barks are missed. Δ = 100 ms because the closest events of one
source are knocks 170 ms apart (150 ms changes F1 by < 0.01). On the demo codec's Griffin-Lim
round trip of the same audio (6 scenes per class) F1 is the same or higher (δ 3, D 50: 0.95
vs 0.93 on the originals): its phase noise adds no onsets above δ = 3 dB. The resulting ceiling on held-out scenes is in ``docs/evaluation.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.evaluation.evaluator import mel_filterbank

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class OnsetParams:
    n_fft: int = 512
    hop: int = 160
    n_mels: int = 40
    floor_db: float = 50.0
    delta_db: float = 4.0
    median_frames: int = 10
    peak_frames: int = 2
    min_ioi: float = 0.10
    correction: float = 0.006


DEFAULT_PARAMS = OnsetParams()


@dataclass
class OnsetResult:
    onsets: np.ndarray  # seconds
    strength: np.ndarray  # F_n, dB per frame
    frame_rate: float  # frames per second of ``strength``
    offset: float  # time of frame 0 (s)

    def times(self) -> np.ndarray:
        return self.offset + np.arange(len(self.strength)) / self.frame_rate


def _resample(wave: np.ndarray, sr: int) -> np.ndarray:
    if sr == SAMPLE_RATE:
        return wave
    n = int(round(len(wave) * SAMPLE_RATE / sr))
    return np.interp(np.linspace(0, len(wave) - 1, n), np.arange(len(wave)), wave)


def log_mel_db(wave: np.ndarray, sr: int = SAMPLE_RATE, p: OnsetParams = DEFAULT_PARAMS) -> np.ndarray:
    """L_n(m) ``[frames, n_mels]`` in dB with the clip-relative floor."""
    x = _resample(np.asarray(wave, np.float64).reshape(-1), sr)
    if len(x) < p.n_fft:
        x = np.pad(x, (0, p.n_fft - len(x)))
    n = 1 + (len(x) - p.n_fft) // p.hop
    idx = np.arange(p.n_fft)[None, :] + p.hop * np.arange(n)[:, None]
    spec = np.abs(np.fft.rfft(x[idx] * np.hanning(p.n_fft + 2)[1:-1], axis=1)) ** 2
    mel = spec @ mel_filterbank(SAMPLE_RATE, p.n_fft, p.n_mels).numpy().astype(np.float64).T
    top = float(mel.max())
    if top <= 0.0:
        return np.zeros_like(mel)
    return 10.0 * np.log10(np.maximum(mel, top * 10.0 ** (-p.floor_db / 10.0)))


def onset_strength(wave: np.ndarray, sr: int = SAMPLE_RATE, p: OnsetParams = DEFAULT_PARAMS) -> OnsetResult:
    """F_n with its frame rate and time offset (no onsets picked)."""
    L = log_mel_db(wave, sr, p)
    flux = np.zeros(len(L))
    flux[1:] = np.maximum(0.0, np.diff(L, axis=0)).mean(1)
    return OnsetResult(np.zeros(0), flux, SAMPLE_RATE / p.hop, p.n_fft / 2 / SAMPLE_RATE + p.correction)


def _sliding(x: np.ndarray, w: int) -> np.ndarray:
    """Windows x[n−w … n+w] for every n (edge-padded) ``[len(x), 2w+1]``."""
    pad = np.pad(x, w, mode="edge")
    return np.lib.stride_tricks.sliding_window_view(pad, 2 * w + 1)


def detect_onsets(wave: np.ndarray, sr: int = SAMPLE_RATE, p: OnsetParams = DEFAULT_PARAMS) -> OnsetResult:
    """Onset times (s) of ``wave`` by the rule of the module docstring."""
    r = onset_strength(wave, sr, p)
    f = r.strength
    thr = p.delta_db + np.median(_sliding(f, p.median_frames), axis=1)
    peak = f >= _sliding(f, p.peak_frames).max(axis=1)
    cand = np.flatnonzero((f > thr) & peak)
    # Strongest first, so of two onsets within the minimum interval the stronger survives.
    kept: list[int] = []
    gap = p.min_ioi * r.frame_rate
    for i in cand[np.argsort(-f[cand], kind="stable")]:
        if all(abs(i - j) >= gap for j in kept):
            kept.append(int(i))
    frames = np.array(sorted(kept), dtype=np.int64)
    r.onsets = r.offset + frames / r.frame_rate
    return r
