"""The guidance settings' bounds, choices and messages (models/generation/guidance_settings.py):
each documented range is closed at both ends and nothing past either end gets in."""

from __future__ import annotations

import pytest

from models.generation.guidance_settings import (
    DEFAULT,
    GuidanceError,
    GuidanceSettings,
    check_alpha,
    check_beta,
    check_mode,
    check_order,
    check_seed,
    check_steps,
)

# (check, lowest accepted, highest accepted, just below, just above)
EDGES = [
    (check_alpha, 0.0, 50.0, -1e-9, 50.000001),
    (check_beta, 0.0, 50.0, -1e-9, 50.000001),
    (check_steps, 1, 1000, 0, 1001),
    (check_seed, 0, 2**63 - 1, -1, 2**63),
]


@pytest.mark.parametrize("check, lo, hi, below, above", EDGES, ids=lambda v: getattr(v, "__name__", ""))
def test_each_range_is_closed_at_both_ends(check, lo, hi, below, above) -> None:  # type: ignore[no-untyped-def]
    assert check(lo) == lo and check(hi) == hi
    assert type(check(lo)) is type(lo)
    for bad in (below, above):
        with pytest.raises(GuidanceError) as err:
            check(bad)
        assert err.value.field == check.__name__.removeprefix("check_")


def test_the_settings_take_the_edge_values() -> None:
    g = GuidanceSettings(alpha=0, beta=50, steps=1000)
    assert (g.alpha, g.beta, g.steps) == (0.0, 50.0, 1000)
    g = GuidanceSettings(alpha=50, beta=0, steps=1)
    assert (g.alpha, g.beta, g.steps) == (50.0, 0.0, 1)


def test_every_mode_and_order_is_accepted_and_the_paper_order_is_the_default() -> None:
    for mode in ("nag", "independent", "negative_text"):
        assert GuidanceSettings(mode=mode).mode == check_mode(mode) == mode
    for order in ("descending", "random", "ascending"):
        assert GuidanceSettings(order=order).order == check_order(order) == order
    assert DEFAULT.order == GuidanceSettings().order == "descending"
    assert (DEFAULT.alpha, DEFAULT.beta, DEFAULT.steps, DEFAULT.mode) == (4.5, 1.5, 25, "nag")  # the paper's
    with pytest.raises(GuidanceError, match="^order must be one of descending, random, ascending") as err:
        GuidanceSettings(order="shuffled")
    assert err.value.field == "order"
    for bad in ("NAG", "", None, 1):
        with pytest.raises(GuidanceError, match="^mode must be one of nag, independent, negative_text"):
            check_mode(bad)


def test_text_and_integral_numbers_are_normalised_and_other_types_refused() -> None:
    assert check_steps(" 10 ") == 10 and check_seed("42") == 42 and check_steps(7.0) == 7
    assert check_beta(" 1.5 ") == 1.5
    # Text is stripped as str.strip does; that includes the ASCII separators U+001C–U+001F,
    # which float() and int() alone would refuse.
    assert check_beta("\x1f1.5\x1c") == 1.5 and check_seed("\x1e42\x1d") == 42
    for bad in (None, [3], 2.5, float("inf"), "1e3", "ten", True):  # True is an int to Python
        with pytest.raises(GuidanceError, match="^steps must be an integer in \\[1, 1000\\]"):
            check_steps(bad)
    for bad in (None, [1.5], "", "1.5x", False):
        with pytest.raises(GuidanceError, match="^beta must be a number in \\[0, 50\\]"):
            check_beta(bad)


def test_a_long_value_is_shown_cut_to_40_characters() -> None:
    def shown(value: object) -> str:
        with pytest.raises(GuidanceError) as err:
            check_alpha(value)
        return str(err.value).rsplit("got ", 1)[1]

    exact = "a" * 38  # repr with its quotes: 40 characters, shown whole
    assert shown(exact) == repr(exact)
    longer = "b" * 39  # 41 characters: the first 37 and "..."
    assert shown(longer) == repr(longer)[:37] + "..."
    assert len(shown("c" * 500)) == 40
