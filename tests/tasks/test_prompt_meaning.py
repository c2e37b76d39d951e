"""Prompts of one scene name different sounds, judged by meaning with the bundle's text tower
(the shipped bundle's FoleyScorer here), whichever captioner proposed them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.prompting.captioner import Caption
from models.prompting.prompt_meaning import distinct_by_meaning
from models.prompting.prompt_text import is_near_duplicate
from models.prompting.scorer import FoleyScorer
from tasks.shot_prompts import UserPrompt, finish_scene_prompts

BUNDLE = Path(__file__).resolve().parents[2] / "models" / "weights" / "foleyworld-tiny"


@pytest.fixture(scope="module")
def scorer() -> FoleyScorer:
    return FoleyScorer(BUNDLE / "scorer")


def _frames() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (8, 64, 64, 3), dtype=np.uint8)


def test_the_issue_examples_are_paraphrases_not_strings(scorer: FoleyScorer) -> None:
    # The string test does not see these as one sound; the text tower does.
    assert not is_near_duplicate("A clock ticking steadily", "A clock ticks")
    assert not is_near_duplicate("A crackling fire", "Fire crackles")
    kept, same = distinct_by_meaning(
        ["A clock ticking steadily", "A crackling fire", "A clock ticks", "A dog barks", "Fire crackles",
         "Rain falls"], scorer)
    assert kept == ["A clock ticking steadily", "A crackling fire", "A dog barks", "Rain falls"]
    assert {(d.prompt, d.kept) for d in same} == {("A clock ticks", "A clock ticking steadily"),
                                                 ("Fire crackles", "A crackling fire")}


def test_unknown_words_abstain(scorer: FoleyScorer) -> None:
    # Both mostly [UNK] for the word-level vocabulary: its 0.7 cosine means nothing, both stay.
    kept, same = distinct_by_meaning(["Footsteps on gravel", "A car horn honks", "A trolley squeals"], scorer,
                                     threshold=0.5)
    assert same == [] and len(kept) == 3


def test_stage_keeps_one_track_per_sound(scorer: FoleyScorer) -> None:
    caption = Caption(["A clock ticking steadily", "A clock ticks", "A crackling", "A crackling fire",
                       "A clock ticks clock ticks", "Rain falls"], "raw", [], {"backend": "vlm"})
    out = finish_scene_prompts(caption, _frames(), k=5, scorer=scorer)
    texts = out.texts
    clocks = [t for t in texts if "clock" in t.lower()]
    assert len(clocks) == 1 and "A crackling fire" in texts and "Rain falls" in texts
    assert "A crackling" not in texts and all("clock ticks clock" not in t.lower() for t in texts)
    stages = {d.text: d.stage for d in out.dropped}
    assert stages["A crackling"] == "clean" and any(s == "same" for s in stages.values())
    assert any("same sound as" in line for line in out.describe())


def test_a_user_prompt_wins_over_its_paraphrase(scorer: FoleyScorer) -> None:
    caption = Caption(["A clock ticks", "A dog barks"], "raw", [], {"backend": "vlm"})
    out = finish_scene_prompts(caption, _frames(), k=5, scorer=scorer,
                               user_prompts=[UserPrompt("a.mp4", "Clock ticking steadily")])
    assert out.texts == ["Clock ticking steadily", "A dog barks"]
