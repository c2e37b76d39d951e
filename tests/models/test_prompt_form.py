"""Well-formed prompts: a repeated phrase is collapsed, a truncated one left out, whichever
captioner wrote them; every FoleyWorld caption passes."""

from __future__ import annotations

import pytest

from models.prompting.prompt_text import clean_prompts_detailed, collapse_repeats, form_problem
from models.training.foleyworld import CAPTIONS


@pytest.mark.parametrize("text, fixed", [
    ("A clock ticks clock ticks", "A clock ticks"),
    ("Tick tock tick tock tick tock", "Tick tock"),
    ("Rain rain falls", "Rain falls"),
    ("A dog barks loudly", "A dog barks loudly"),
])
def test_collapse_repeats(text: str, fixed: str) -> None:
    assert collapse_repeats(text) == fixed


@pytest.mark.parametrize("text, problem", [
    ("A crackling", "no sound-making subject"),
    ("Ticking steadily", "no sound-making subject"),
    ("A clock ticks clock ticks", "repeated phrase"),
    ("A dog barks at the", "cut off after 'the'"),
    ("The", "no content words"),
])
def test_form_problems(text: str, problem: str) -> None:
    assert form_problem(text) == problem


def test_every_foleyworld_caption_is_well_formed() -> None:
    assert [c for cs in CAPTIONS.values() for c in cs if form_problem(c)] == []
    for ok in ("A crackling fire", "A clock ticking steadily", "Guitar string plucked", "Surf rolls in"):
        assert form_problem(ok) is None


def test_clean_repairs_and_drops_with_reasons() -> None:
    res = clean_prompts_detailed("A clock ticks clock ticks\nA crackling\nA crackling fire\nLoud", k=5)
    assert res.prompts == ["A clock ticks", "A crackling fire"]
    reasons = dict(res.dropped)
    assert reasons["A clock ticks clock ticks"] == "repeated phrase, kept as 'A clock ticks'"
    assert reasons["A crackling"] == "not well formed: no sound-making subject"
