"""FoleyWorld: a seeded procedural audio-visual world for training and testing stepfoley.

A scene is 1–3 sound sources over a background. Each source class has a distinct visual
object (shape + colour, in its own region of the frame) and a sound, and **the object's motion
decides when the sound happens**: a foot lands → a step; a fist meets the door → a knock; the
bell reaches the end of its swing → a strike; the dog's head jerks → a bark; the clock hand
jumps → a tick. Continuous sources tie loudness to motion: the wave's height is the surf's
envelope, the flame's size the crackle density, the rotor's angular speed the helicopter's
level and pitch, the saw's shake the engine's revs.

Sounds are real recordings where the class has them (``foleyworld_sounds/``: ESC-10, Minetest
Foley, BigSoundBank; ATTRIBUTION.md names each file's source and licence), cut at their
onsets, pitched (resampling by ±2 semitones), filtered and placed where the visuals say;
knocking and bells are synthesised (damped modal resonators). Recordings are split into
generator / evaluator / test groups (``RECORDING_SPLIT``), and seeds into ``SPLITS``, both
declared here, so held-out evaluation never hears a recording the generator trained on.

Everything is a pure function of the seed (``numpy.random.default_rng(seed)``).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16000
FPS = 25
SOUNDS = Path(__file__).resolve().parent / "foleyworld_sounds"

CLASSES: tuple[str, ...] = ("dog", "footsteps", "knocking", "bell", "clock", "rooster", "rain",
                            "waves", "fire", "helicopter", "chainsaw")
EVENT_CLASSES = {"dog", "footsteps", "knocking", "bell", "clock", "rooster"}

# Disjoint seed ranges. Generator training uses "train"; model selection "val"; the
# evaluator trains on "evaluator"; every reported number uses "test".
SPLITS: dict[str, range] = {
    "train": range(0, 1_000_000),
    "val": range(1_000_000, 1_010_000),
    "evaluator": range(1_100_000, 1_200_000),
    "test": range(2_000_000, 2_010_000),
}
# Which group a seed's recordings come from (index of the file within its class, mod 4).
RECORDING_SPLIT = {"train": (0, 1), "val": (0, 1), "evaluator": (2,), "test": (3,)}

CAPTIONS: dict[str, tuple[str, ...]] = {
    "dog": ("a dog barks", "barking dog", "a dog barking loudly", "dog barks sharply", "a dog yaps"),
    "footsteps": ("footsteps", "someone walks", "footsteps on the ground", "steps walking steadily",
                  "a person walking"),
    "knocking": ("knocking on a door", "someone knocks", "knuckles rap on wood", "a knock at the door",
                 "door knocking"),
    "bell": ("a bell rings", "ringing bell", "a bell chimes", "church bell tolls", "bell strikes"),
    "clock": ("a clock ticks", "ticking clock", "clock ticking steadily", "a clock tick tocks",
              "the ticking of a clock"),
    "rooster": ("a rooster crows", "rooster crowing", "a cock crows loudly", "crowing rooster",
                "a rooster calls"),
    "rain": ("rain falls", "rain pattering", "heavy rain pours", "rainfall", "raindrops patter"),
    "waves": ("ocean waves crash", "waves breaking", "surf rolls in", "sea waves wash ashore",
              "waves crash loudly"),
    "fire": ("fire crackles", "a crackling fire", "flames crackle", "burning fire", "campfire crackling"),
    "helicopter": ("a helicopter flies", "helicopter rotor whirs", "a helicopter hovers",
                   "rotor blades thump", "helicopter overhead"),
    "chainsaw": ("a chainsaw revs", "chainsaw cutting", "a chainsaw buzzes", "chainsaw engine roars",
                 "a motor saw runs"),
}
_KEYWORDS: dict[str, tuple[str, ...]] = {
    "dog": ("dog", "bark", "yap", "woof", "puppy"),
    "footsteps": ("footstep", "step", "walk", "stride", "tread"),
    "knocking": ("knock", "rap", "knuckle"),
    "bell": ("bell", "chime", "toll", "ding"),
    "clock": ("clock", "tick", "tock"),
    "rooster": ("rooster", "crow", "cock", "chicken"),
    "rain": ("rain", "drizzle", "downpour", "raindrop"),
    "waves": ("wave", "surf", "ocean", "sea"),
    "fire": ("fire", "flame", "crackl", "burn"),
    "helicopter": ("helicopter", "rotor", "chopper"),
    "chainsaw": ("chainsaw", "saw", "motor saw"),
}
COLOURS: dict[str, tuple[int, int, int]] = {
    "dog": (150, 95, 45), "footsteps": (40, 60, 170), "knocking": (230, 200, 160),
    "bell": (235, 195, 40), "clock": (245, 245, 245), "rooster": (220, 30, 30),
    "rain": (120, 190, 255), "waves": (20, 110, 200), "fire": (255, 120, 20),
    "helicopter": (110, 110, 120), "chainsaw": (255, 170, 0),
}


def check_split(seed: int, split: str) -> int:
    """Return ``seed`` if it lies in ``split``, else raise (keeps evaluation honest)."""
    if int(seed) not in SPLITS[split]:
        raise ValueError(f"seed {seed} is not in the {split!r} split {SPLITS[split]}")
    return int(seed)


def split_of(seed: int) -> str:
    for name, r in SPLITS.items():
        if int(seed) in r:
            return name
    return "train"


def captions_for(cls: str, rng: np.random.Generator) -> str:
    """One paraphrase of the class's caption."""
    opts = CAPTIONS[cls]
    return opts[int(rng.integers(len(opts)))]


def class_of_caption(text: str) -> str | None:
    """The FoleyWorld class a caption or prompt names (first keyword match), or None."""
    t = " " + re.sub(r"[^a-z ]", " ", text.lower()) + " "
    best: tuple[int, str] | None = None
    for cls, words in _KEYWORDS.items():
        for w in words:
            i = t.find(w)
            if i >= 0 and (best is None or i < best[0]):
                best = (i, cls)
    return best[1] if best else None


# ------------------------------------------------------------------------------- recordings
@functools.lru_cache(maxsize=None)
def recordings(cls: str, group: str) -> tuple[np.ndarray, ...]:
    """The class's recordings of one split group (16 kHz mono float32)."""
    folder = SOUNDS / cls
    if not folder.is_dir():
        return ()
    files = sorted(folder.glob("*.flac"))
    keep = RECORDING_SPLIT[group]
    chosen = [f for i, f in enumerate(files) if i % 4 in keep] or files[:1]
    return tuple(sf.read(f, dtype="float32")[0] for f in chosen)


def _envelope(x: np.ndarray, hop: int = 160) -> np.ndarray:
    n = len(x) // hop
    return np.sqrt((x[: n * hop].reshape(n, hop) ** 2).mean(1) + 1e-12)


@functools.lru_cache(maxsize=None)
def snippets(cls: str, group: str, length_s: float) -> tuple[np.ndarray, ...]:
    """Onset-aligned cuts of the class's recordings: event sounds to place at visual events.

    Onsets are frames where the 10 ms RMS envelope rises above 30 % of the clip's peak after
    being below it; each cut starts 10 ms before and lasts ``length_s`` with a 20 ms fade-out.
    """
    out = []
    n = int(length_s * SAMPLE_RATE)
    for x in recordings(cls, group):
        env = _envelope(x)
        above = env > 0.3 * env.max()
        starts = np.flatnonzero(above & ~np.r_[False, above[:-1]])
        for s in starts[:6]:
            a = max(0, s * 160 - 160)
            cut = x[a:a + n].copy()
            if len(cut) < n // 2:
                continue
            fade = min(320, len(cut))
            cut[-fade:] *= np.linspace(1, 0, fade, dtype=np.float32)
            out.append(cut)
    return tuple(out)


def pitch_shift(x: np.ndarray, semitones: float) -> np.ndarray:
    """Resample by 2^(s/12): pitch and speed together, as a tape would."""
    r = 2.0 ** (semitones / 12.0)
    idx = np.arange(0, len(x) - 1, r)
    return np.interp(idx, np.arange(len(x)), x).astype(np.float32)


def _modal(freqs: list[float], decays: list[float], amps: list[float], dur: float,
           rng: np.random.Generator) -> np.ndarray:
    """Damped modal resonator: Σ a_i e^{−t/τ_i} sin(2π f_i t + φ_i) after a short noise click."""
    t = np.arange(int(dur * SAMPLE_RATE)) / SAMPLE_RATE
    y = sum(a * np.exp(-t / d) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
            for f, d, a in zip(freqs, decays, amps))
    click = rng.normal(0, 1, len(t)) * np.exp(-t / 0.002) * 0.3
    return (y + click).astype(np.float32)


def _event_sound(cls: str, group: str, rng: np.random.Generator) -> np.ndarray:
    if cls == "knocking":
        f0 = rng.uniform(180, 320)
        return _modal([f0, f0 * 2.3, f0 * 4.1], [0.04, 0.02, 0.01], [1.0, 0.5, 0.25], 0.18, rng)
    if cls == "bell":
        f0 = rng.uniform(400, 900)
        ratios = [1.0, 2.0, 2.76, 5.4, 8.93]
        return _modal([f0 * r for r in ratios], [1.2, 0.8, 0.6, 0.3, 0.15],
                      [1.0, 0.6, 0.5, 0.25, 0.12], 1.4, rng)
    length = {"dog": 0.45, "footsteps": 0.25, "clock": 0.09, "rooster": 1.4}[cls]
    cuts = snippets(cls, group, length)
    base = cuts[int(rng.integers(len(cuts)))]
    return pitch_shift(base, rng.uniform(-2, 2))


def _loop(cls: str, group: str, n: int, rng: np.random.Generator) -> np.ndarray:
    recs = recordings(cls, group)
    x = recs[int(rng.integers(len(recs)))]
    x = pitch_shift(x, rng.uniform(-1.5, 1.5))
    reps = int(np.ceil(n / len(x))) + 1
    y = np.tile(x, reps)
    start = int(rng.integers(len(x)))
    return y[start:start + n].copy()


# ------------------------------------------------------------------------------- timing
def _event_times(cls: str, duration: float, rng: np.random.Generator) -> list[float]:
    """When the object's motion produces a sound (seconds)."""
    t, out = rng.uniform(0.2, 0.8), []
    while t < duration - 0.15:
        if cls == "footsteps":
            out.append(t)
            t += rng.uniform(0.42, 0.62)
        elif cls == "clock":
            out.append(t)
            t += 1.0 if rng.random() < 0.999 else 0.5
        elif cls == "knocking":
            for k in range(int(rng.integers(2, 5))):
                if t + 0.17 * k < duration - 0.15:
                    out.append(t + 0.17 * k)
            t += rng.uniform(1.8, 3.0)
        elif cls == "bell":
            out.append(t)
            t += rng.uniform(1.1, 1.6)
        elif cls == "dog":
            for k in range(int(rng.integers(1, 4))):
                if t + 0.38 * k < duration - 0.15:
                    out.append(t + 0.38 * k)
            t += rng.uniform(1.3, 2.5)
        elif cls == "rooster":
            out.append(t)
            t += rng.uniform(2.5, 4.5)
    return out


def _control(cls: str, duration: float, rng: np.random.Generator) -> np.ndarray:
    """A slow control signal in [0, 1] at FPS for continuous sources (motion ↔ loudness)."""
    n = int(round(duration * FPS))
    t = np.arange(n) / FPS
    if cls == "waves":
        period = rng.uniform(3.5, 6.0)
        return 0.5 + 0.5 * np.sin(2 * np.pi * t / period + rng.uniform(0, 6.28))
    knots = rng.uniform(0.3, 1.0, size=int(duration) + 3)
    return np.interp(t, np.arange(len(knots)) * 1.0, knots).clip(0, 1)


# ------------------------------------------------------------------------------- scenes
@dataclass
class Source:
    cls: str
    caption: str
    audio: np.ndarray
    onsets: list[float] = field(default_factory=list)
    box: tuple[int, int, int, int] = (0, 0, 0, 0)  # y0, x0, y1, x1 of its region


@dataclass
class Scene:
    seed: int
    frames: np.ndarray  # uint8 [T, H, W, 3] at FPS
    sources: list[Source]
    mixture: np.ndarray
    duration: float
    sample_rate: int = SAMPLE_RATE
    fps: int = FPS

    @property
    def events(self) -> dict[str, list[float]]:
        return {s.cls: s.onsets for s in self.sources}


def _regions(size: int, n: int, rng: np.random.Generator) -> list[tuple[int, int, int, int]]:
    h = size // 2
    quads = [(0, 0), (0, h), (h, 0), (h, h)]
    order = rng.permutation(4)[:n]
    return [(quads[i][0], quads[i][1], quads[i][0] + h, quads[i][1] + h) for i in order]


def _background(size: int, n: int, rng: np.random.Generator) -> np.ndarray:
    base = rng.uniform(20, 90, size=3)
    grad = np.linspace(0, 1, size)[:, None, None] * rng.uniform(-25, 25, size=3)
    img = np.clip(base + grad + np.zeros((size, size, 3)), 0, 255)
    return np.broadcast_to(img.astype(np.uint8), (n, size, size, 3)).copy()


def _impulse_curve(times: list[float], n: int, width: float, rise: bool = False) -> np.ndarray:
    """Per-frame motion profile: 1 at each event frame, decaying over ``width`` s."""
    t = np.arange(n) / FPS
    out = np.zeros(n)
    for e in times:
        d = t - e
        if rise:  # approach: the object moves towards contact and arrives at e
            m = (d <= 0) & (d > -width)
            out[m] = np.maximum(out[m], 1 + d[m] / width)
        m = (d >= 0) & (d < width)
        out[m] = np.maximum(out[m], 1 - d[m] / width)
    return out


def _draw(frames: np.ndarray, cls: str, box: tuple[int, int, int, int], onsets: list[float],
          control: np.ndarray | None, rng: np.random.Generator) -> None:
    """Paint the class's object into its region of every frame, moving as its sound dictates."""
    y0, x0, y1, x1 = box
    h, w = y1 - y0, x1 - x0
    n = len(frames)
    col = np.array(COLOURS[cls], np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = h / 2, w / 2
    r = min(h, w)
    region = frames[:, y0:y1, x0:x1]
    if cls in EVENT_CLASSES:
        jump = _impulse_curve(onsets, n, 0.12)
        approach = _impulse_curve(onsets, n, 0.2, rise=True)
    for i in range(n):
        if cls == "dog":
            body = (np.abs(yy - cy - r * 0.15) < r * 0.15) & (np.abs(xx - cx) < r * 0.3)
            hy = cy - r * 0.1 - jump[i] * r * 0.15
            head = (yy - hy) ** 2 + (xx - cx - r * 0.3) ** 2 < (r * 0.13) ** 2
            mask = body | head
        elif cls == "footsteps":
            phase = int(np.searchsorted(onsets, i / FPS))  # which foot swings next
            lift = (1 - approach[i]) * r * 0.2 if approach[i] > 0 else r * 0.2
            lift_a = lift if phase % 2 == 0 else 0.0
            lift_b = lift if phase % 2 == 1 else 0.0
            fa = (np.abs(yy - (cy + r * 0.2 - lift_a)) < r * 0.07) & (np.abs(xx - cx + r * 0.15) < r * 0.12)
            fb = (np.abs(yy - (cy + r * 0.2 - lift_b)) < r * 0.07) & (np.abs(xx - cx - r * 0.15) < r * 0.12)
            mask = fa | fb
        elif cls == "knocking":
            door = (np.abs(yy - cy) < r * 0.35) & (np.abs(xx - cx - r * 0.2) < r * 0.08)
            fx = cx - r * 0.3 + approach[i] * r * 0.38
            fist = (yy - cy) ** 2 + (xx - fx) ** 2 < (r * 0.09) ** 2
            mask = door | fist
        elif cls == "bell":
            # Swing phase k·π exactly at strike k (piecewise linear between the jittered
            # strikes, mean period outside them), so the bell is at a swing extreme (±1) at
            # every strike, alternating sides.
            period = float(np.diff(onsets).mean()) if len(onsets) > 1 else 1.3
            tt = i / FPS
            if not onsets:
                k_phase = tt / period
            elif tt < onsets[0]:
                k_phase = (tt - onsets[0]) / period
            elif tt > onsets[-1]:
                k_phase = len(onsets) - 1 + (tt - onsets[-1]) / period
            else:
                k_phase = float(np.interp(tt, onsets, np.arange(len(onsets))))
            swing = np.cos(np.pi * k_phase)  # ±1 at strikes
            bx = cx + swing * r * 0.2
            mask = ((yy - cy) ** 2 / (r * 0.25) ** 2 + (xx - bx) ** 2 / (r * 0.18) ** 2 < 1) & (yy > cy - r * 0.2)
        elif cls == "clock":
            face = (yy - cy) ** 2 + (xx - cx) ** 2 < (r * 0.35) ** 2
            k = int(np.searchsorted(onsets, i / FPS, side="right"))
            ang = k * np.pi / 6
            hand = (np.abs((xx - cx) * np.cos(ang) - (yy - cy) * np.sin(ang)) < 1.5) & (
                ((xx - cx) * np.sin(ang) + (yy - cy) * np.cos(ang)) < 0) & face
            region[i][face] = col
            region[i][hand] = (0, 0, 0)
            continue
        elif cls == "rooster":
            body = ((yy - cy - r * 0.1) ** 2 + (xx - cx) ** 2 < (r * 0.2) ** 2)
            crow = _impulse_curve(onsets, n, 1.0)[i]
            hy = cy - r * 0.15 - crow * r * 0.12
            comb = (np.abs(yy - hy) < r * 0.06) & (np.abs(xx - cx - r * 0.15) < r * 0.08)
            mask = body | comb
        elif cls == "rain":
            c = control[i]
            drops = ((xx * 7 + (yy + i * 6) * 3) % 23 < 2 + 5 * c) & ((xx % 4) == 0)
            mask = drops
        elif cls == "waves":
            level = cy + r * 0.3 - control[i] * r * 0.45
            mask = yy > level + 3 * np.sin(xx / 4 + i / 3)
        elif cls == "fire":
            c = control[i] * (0.8 + 0.4 * rng.random())
            height = r * (0.2 + 0.3 * c)
            mask = (yy > cy + r * 0.3 - height * (1 - np.abs(xx - cx) / (r * 0.3))) & (yy < cy + r * 0.3) & (
                np.abs(xx - cx) < r * 0.3)
        elif cls == "helicopter":
            body = (np.abs(yy - cy - r * 0.1) < r * 0.1) & (np.abs(xx - cx) < r * 0.25)
            ang = np.cumsum(0.3 + 1.2 * control)[i]
            rotor = (np.abs((xx - cx) * np.sin(ang) - (yy - cy + r * 0.12) * np.cos(ang)) < 1.2) & (
                (xx - cx) ** 2 + (yy - cy + r * 0.12) ** 2 < (r * 0.35) ** 2)
            mask = body | rotor
        else:  # chainsaw
            shake = (control[i] * 3) * np.sin(i * 2.1)
            mask = (np.abs(yy - cy - shake) < r * 0.06) & (np.abs(xx - cx) < r * 0.35)
        region[i][mask] = col


def _voice(cls: str, duration: float, onsets: list[float], control: np.ndarray | None,
           group: str, rng: np.random.Generator) -> np.ndarray:
    n = int(round(duration * SAMPLE_RATE))
    y = np.zeros(n, np.float32)
    if cls in EVENT_CLASSES:
        for t in onsets:
            s = _event_sound(cls, group, rng) * rng.uniform(0.6, 1.0)
            a = int(t * SAMPLE_RATE)
            m = min(len(s), n - a)
            if m > 0:
                y[a:a + m] += s[:m]
    else:
        y = _loop(cls, group, n, rng)
        env = np.interp(np.arange(n) / SAMPLE_RATE, np.arange(len(control)) / FPS, control)
        y = y * (0.25 + 0.75 * env).astype(np.float32)
    peak = float(np.abs(y).max()) or 1.0
    return (y / peak * rng.uniform(0.3, 0.6)).astype(np.float32)


def clip_frame_indices(duration: float, clip_fps: float = 8.0) -> np.ndarray:
    """Indices of the 25 fps frames that stand for a ``clip_fps`` stream: the frame under the
    centre of each clip sample, ``⌊(i + ½) · FPS / clip_fps⌋``, capped at the last frame."""
    n = int(duration * clip_fps + 1e-6)
    return np.minimum(np.floor((np.arange(n) + 0.5) * FPS / clip_fps).astype(int), int(duration * FPS) - 1)


def model_video(frames: np.ndarray, duration: float = 8.0) -> dict[str, np.ndarray]:
    """A scene's 25 fps frames as the pipeline's video input: the 8 fps clip stream and the
    full-rate sync stream."""
    return {"clip": frames[clip_frame_indices(duration)], "sync": frames}


def make_scene(seed: int, duration: float = 8.0, n_sources: int | None = None, size: int = 128,
               classes: list[str] | tuple[str, ...] | None = None) -> Scene:
    """One scene: 1–3 sources (distinct classes) with frames, per-source audio and the mixture."""
    rng = np.random.default_rng(int(seed))
    group = split_of(seed)
    k = int(n_sources) if n_sources else int(rng.integers(1, 4))
    pool = list(classes) if classes else list(CLASSES)
    chosen = [pool[i] for i in rng.choice(len(pool), size=min(k, len(pool)), replace=False)]
    n_frames = int(round(duration * FPS))
    frames = _background(size, n_frames, rng)
    sources = []
    for cls, box in zip(chosen, _regions(size, len(chosen), rng)):
        onsets = _event_times(cls, duration, rng) if cls in EVENT_CLASSES else []
        control = None if cls in EVENT_CLASSES else _control(cls, duration, rng)
        _draw(frames, cls, box, onsets, control, rng)
        audio = _voice(cls, duration, onsets, control, group, rng)
        sources.append(Source(cls, captions_for(cls, rng), audio, onsets, box))
    mixture = np.sum([s.audio for s in sources], axis=0).astype(np.float32)
    peak = float(np.abs(mixture).max())
    if peak > 0.98:
        scale = 0.98 / peak
        mixture *= scale
        for s in sources:
            s.audio *= scale
    return Scene(int(seed), frames, sources, mixture, float(duration))


@dataclass
class Clip:
    scenes: list[Scene]
    cut_times: list[float]

    @property
    def frames(self) -> np.ndarray:
        return np.concatenate([s.frames for s in self.scenes])

    @property
    def mixture(self) -> np.ndarray:
        return np.concatenate([s.mixture for s in self.scenes])

    @property
    def duration(self) -> float:
        return float(sum(s.duration for s in self.scenes))


def make_clip(seed: int, duration: float, n_scenes: int, size: int = 128) -> Clip:
    """Scenes of (roughly) equal length joined by hard cuts, at whole frames."""
    rng = np.random.default_rng(int(seed) ^ 0x5EED)
    weights = rng.uniform(0.7, 1.3, n_scenes)
    frames = np.maximum(np.round(weights / weights.sum() * duration * FPS), FPS).astype(int)
    frames[-1] += int(round(duration * FPS)) - frames.sum()
    scenes, cuts, t = [], [], 0.0
    r = SPLITS[split_of(seed)]
    for i, nf in enumerate(frames):
        # Sub-scene seeds stay inside the clip's own split, so held-out clips stay held out.
        sub_seed = r.start + ((int(seed) - r.start) * 16 + i) % len(r)
        scenes.append(make_scene(sub_seed, nf / FPS, None, size))
        if i:
            cuts.append(round(t, 6))
        t += nf / FPS
    return Clip(scenes, cuts)
