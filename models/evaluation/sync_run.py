"""The synchronisation measurement on held-out FoleyWorld scenes: three tracks per prompted
event source, scored by ``models.evaluation.sync``.

For a held-out scene s and one of its event-driven sources (class c, caption p, visual event
times E, real isolated audio a), with a generator G(video, prompt, seed) (the bundle, one
prompt, no negatives: independent CFG at the run's α and steps):

    generated = G(V_s, p, seed)       the scene's own video
    ceiling   = a                     the real isolated source audio
    floor     = G(V_s', p, seed)      another held-out scene's video (same prompt, same seed)

and all three are scored against E. The shuffled scene s' is the next item of the list (in
order, cyclically) that shows the same class in a different scene, else the next item from a
different scene: the same kind of object moving on its own schedule, so the floor measures
what the model gets from the prompt and its prior alone (e.g. the clock's 1 Hz), not from the
motion of this scene.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from models.evaluation.sync import SYNC_CLASSES, score_track
from models.training import foleyworld as fw

# generate(item, with_video_of) → the waveform of item's caption and seed on with_video_of.video.
Generate = Callable[["SyncItem", "SyncItem"], np.ndarray]


@dataclass
class SyncItem:
    scene: int
    cls: str
    caption: str
    events: list[float]
    audio: np.ndarray
    video: dict[str, np.ndarray]
    seed: int


def items_of_scene(sc: fw.Scene, seed_of: Callable[[int, str], int]) -> list[SyncItem]:
    """One item per event-driven source of a scene."""
    video = fw.model_video(sc.frames, sc.duration)
    return [SyncItem(sc.seed, s.cls, s.caption, list(s.onsets), s.audio, video, seed_of(sc.seed, s.cls))
            for s in sc.sources if s.cls in SYNC_CLASSES and s.onsets]


def single_source_items(seeds: Sequence[int], size: int = 64) -> list[SyncItem]:
    """One-source held-out scenes, classes in turn (``SYNC_CLASSES[i % 6]``): the clean case,
    where the only thing moving is the prompted object. Generation seed = the item's index."""
    out = []
    for i, seed in enumerate(seeds):
        cls = SYNC_CLASSES[i % len(SYNC_CLASSES)]
        sc = fw.make_scene(fw.check_split(seed, "test"), 8.0, 1, size, classes=[cls])
        out.extend(items_of_scene(sc, lambda _s, _c, i=i: i))
    return out


def shuffled_partner(items: Sequence[SyncItem], i: int) -> int:
    """Index of the item whose video is item i's shuffled-video control (module docstring)."""
    n = len(items)
    order = [(i + k) % n for k in range(1, n)]
    for j in order:
        if items[j].scene != items[i].scene and items[j].cls == items[i].cls:
            return j
    for j in order:
        if items[j].scene != items[i].scene:
            return j
    raise ValueError("the shuffled-video control needs items from at least two scenes")


def measure_sync(items: Sequence[SyncItem], generate: Generate, sr: int,
                 progress: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
    """Rows (scene, class, role, prompt, seed, shuffled_scene + ``score_track``'s fields)."""
    rows: list[dict[str, Any]] = []
    for i, it in enumerate(items):
        j = shuffled_partner(items, i)
        waves = {"generated": (generate(it, it), sr),
                 "ceiling": (it.audio, fw.SAMPLE_RATE),
                 "floor": (generate(it, items[j]), sr)}
        for role, (wave, rate) in waves.items():
            rows.append({"scene": it.scene, "class": it.cls, "role": role, "prompt": it.caption, "seed": it.seed,
                         "shuffled_scene": items[j].scene, **score_track(np.asarray(wave), rate, it.events)})
        if progress:
            progress(i + 1, len(items))
    return rows
