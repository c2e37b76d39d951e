"""Cleaning model output into prompts: the shapes real VLMs answer in, and properties over
arbitrary strings (never crashes, never an empty or over-long prompt, never more than k)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from models.prompting.prompt_text import (MAX_WORDS, clean_prompts, clean_prompts_detailed, dedupe_prompts,
                                is_near_duplicate, is_non_sound, normalise, split_items, strip_item)


def test_numbered_list_with_chatter_duplicates_and_non_sounds() -> None:
    text = ("Sure! Here are the sound events you asked for:\n"
            "1. Ocean waves crash loudly.\n"
            "2) **Sail flaps rhythmically**\n"
            "3. Ocean wave crashes loudly\n"
            "- A beautiful sunset\n"
            "4. Seagulls cry overhead in the distance, while the boat rocks gently against the old pier\n"
            "I hope this helps! Let me know if you need anything else.")
    res = clean_prompts_detailed(text, k=5)
    assert res.prompts == ["Ocean waves crash loudly", "Sail flaps rhythmically", "Seagulls cry overhead in the distance"]
    reasons = dict(res.dropped)
    assert reasons["A beautiful sunset"] == "not a sound"
    assert reasons["Ocean wave crashes loudly"].startswith("duplicate")
    assert any(r == "chatter" for r in reasons.values())


def test_bullets_json_and_single_line_lists() -> None:
    assert clean_prompts("* Dog barks\n• Door creaks open\n+ Clock ticks") == ["Dog barks", "Door creaks open", "Clock ticks"]
    assert clean_prompts('Output: ["Dog barks", "dog barking", {"prompt": "Rain patters on a tin roof"}] ok?') == [
        "Dog barks", "Rain patters on a tin roof"]
    assert clean_prompts("rain, thunder, footsteps on gravel") == ["Rain", "Thunder", "Footsteps on gravel"]
    assert clean_prompts("Engine hums; tyres screech; horn honks") == ["Engine hums", "Tyres screech", "Horn honks"]
    assert clean_prompts("Sound 1: Clock ticks\nSound 2: Bell rings") == ["Clock ticks", "Bell rings"]
    assert clean_prompts("Ocean waves crash loudly. Sail flaps rhythmically.") == [
        "Ocean waves crash loudly", "Sail flaps rhythmically"]
    assert clean_prompts("1. **Waves**: The ocean waves crash on the shore.\n2. **Wind**: Wind howls.") == [
        "The ocean waves crash on the shore", "Wind howls"]


def test_k_limit_and_word_limit() -> None:
    lines = "\n".join(f"{w} thuds" for w in ["Box", "Crate", "Barrel", "Log", "Sack", "Stone", "Brick"])
    out = clean_prompts(lines, k=3)
    assert out == ["Box thuds", "Crate thuds", "Barrel thuds"]
    long = "Heavy rain drums " + " ".join(f"on roof{i}" for i in range(15))  # no repeated run
    (p,) = clean_prompts(long)
    assert len(p.split()) == MAX_WORDS
    assert clean_prompts("Dog barks", k=0) == []


def test_helpers() -> None:
    assert strip_item('  3. "**Bell rings.**" ') == "Bell rings"
    assert strip_item("- Wind howls (in the background)") == "Wind howls"
    assert normalise("The dogs are barking") == normalise("the dog are bark")
    assert is_near_duplicate("Dog barks", "dog barking") and not is_near_duplicate("Dog barks", "Cat meows")
    assert is_non_sound("A beautiful sunset") and is_non_sound("a wooden table")
    assert not is_non_sound("Sail flaps rhythmically") and not is_non_sound("Ocean waves crash loudly")
    assert split_items("[Dog barks\nBell rings") == ["[Dog barks", "Bell rings"]  # broken JSON → lines
    assert dedupe_prompts(["Dog barks", " dog  barking ", "", "Bell rings"]) == ["Dog barks", "Bell rings"]


@settings(max_examples=300, deadline=None)
@given(st.text(), st.integers(min_value=0, max_value=8))
def test_never_crashes_never_empty(text: str, k: int) -> None:
    out = clean_prompts(text, k=k)
    assert len(out) <= k
    for p in out:
        assert p and p.strip() == p and any(ch.isalnum() for ch in p)
        assert len(p.split()) <= MAX_WORDS
    # No two survivors are near-duplicates of each other.
    assert all(not is_near_duplicate(a, b) for i, a in enumerate(out) for b in out[i + 1:])


_ITEM = st.text(alphabet=st.characters(codec="utf-8"), max_size=80)


@settings(max_examples=150, deadline=None)
@given(st.lists(_ITEM, max_size=12), st.sampled_from(["\n", "\n- ", "\n1. ", "; "]))
def test_list_shaped_garbage(items: list[str], sep: str) -> None:
    for text in (sep.join(items), __import__("json").dumps(items)):
        out = clean_prompts(text, k=5, drop_non_sounds=False)
        assert len(out) <= 5 and all(p.strip() for p in out)
