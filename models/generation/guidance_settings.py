"""The guidance settings of a generation, in one typed home: α, β, Euler steps, mode, order.

For track k with prompt C_k, video V and negative audio x̃ every ODE step uses
(``models.generation.nag``)

    ũ = u(∅) + α · [u(V, C_k) − u(∅)] + β · [u(V, C_k) − u_ψ(V, ∅, x̃)]

integrated over ``steps`` Euler steps; ``mode`` chooses the baseline (``independent``: CFG per
prompt; ``negative_text``: earlier prompts as negative text) or NAG; ``order`` is the order in
which a scene's prompts are generated (by salience).

The one rule about β lives here (:func:`effective_beta`): the negative-audio term exists only
in ``nag`` mode *and* when there is negative audio; otherwise the step is plain CFG (β = 0).
Track 1 of a scene without original audio therefore always runs with β = 0.

Bounds, checked wherever a value enters (CLI flags, environment, API bodies, flow parameters,
library calls), so a bad value fails up front with one line naming the field:

* α ∈ [0, 50]: 0 is the unconditional model; MMAudio uses 4.5; past ~15 CFG saturates and
  past 50 the update of one step leaves the range the network was trained on;
* β ∈ [0, 50]: 0 is CFG; the paper uses 1.5 and sweeps 0…3; a negative β would pull *towards*
  the negatives (not a guidance this project offers);
* steps ∈ [1, 1000]: 25 is MMAudio's default; beyond 1000 Euler steps nothing changes audibly
  but the wall time;
* seed ∈ [0, 2^63 − 1]: stored in a signed 64-bit column and fed to ``torch.Generator``;
* every value finite (NaN and ±inf are refused, as are booleans posing as numbers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

MODES = ("nag", "independent", "negative_text")
ORDERS = ("descending", "random", "ascending")  # the first is the default (the paper's)
ALPHA_RANGE = (0.0, 50.0)
BETA_RANGE = (0.0, 50.0)
STEPS_RANGE = (1, 1000)
SEED_RANGE = (0, 2**63 - 1)


class GuidanceError(ValueError):
    """A guidance value out of its range; ``field`` names the setting, the message is one line."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field} {message}")
        self.field = field


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_float(value: Any, field: str, lo: float, hi: float) -> float:
    """``value`` (a number, or text of one) as a finite float in [lo, hi]."""
    if isinstance(value, bool):
        raise GuidanceError(field, f"must be a number in [{lo:g}, {hi:g}], got {_show(value)}")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError, OverflowError):
        raise GuidanceError(field, f"must be a number in [{lo:g}, {hi:g}], got {_show(value)}") from None
    if not math.isfinite(number) or not lo <= number <= hi:
        raise GuidanceError(field, f"must be a finite number in [{lo:g}, {hi:g}], got {_show(value)}")
    return number


def check_int(value: Any, field: str, lo: int, hi: int) -> int:
    """``value`` (an integer, an integral float, or text of an integer) as an int in [lo, hi]."""
    bad = GuidanceError(field, f"must be an integer in [{lo}, {hi}], got {_show(value)}")
    if isinstance(value, bool):
        raise bad
    if isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            raise bad from None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        number = int(value)
    else:
        raise bad
    if not lo <= number <= hi:
        raise bad
    return number


def check_choice(value: Any, field: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise GuidanceError(field, f"must be one of {', '.join(choices)}, got {_show(value)}")
    return value


def check_alpha(value: Any, field: str = "alpha") -> float:
    return check_float(value, field, *ALPHA_RANGE)


def check_beta(value: Any, field: str = "beta") -> float:
    return check_float(value, field, *BETA_RANGE)


def check_steps(value: Any, field: str = "steps") -> int:
    return check_int(value, field, *STEPS_RANGE)


def check_seed(value: Any, field: str = "seed") -> int:
    return check_int(value, field, *SEED_RANGE)


def check_mode(value: Any, field: str = "mode") -> str:
    return check_choice(value, field, MODES)


def check_order(value: Any, field: str = "order") -> str:
    return check_choice(value, field, ORDERS)


@dataclass(frozen=True)
class GuidanceSettings:
    """α, β, steps, mode and order of a generation, valid by construction (values are
    normalised: ``GuidanceSettings(beta="1.5").beta == 1.5``; a bad one raises GuidanceError)."""

    alpha: float = 4.5
    beta: float = 1.5
    steps: int = 25
    mode: str = "nag"
    order: str = ORDERS[0]

    def __post_init__(self) -> None:
        # Frozen: normalised values go in through object.__setattr__, once, here.
        for name, check in (("alpha", check_alpha), ("beta", check_beta), ("steps", check_steps),
                            ("mode", check_mode), ("order", check_order)):
            object.__setattr__(self, name, check(getattr(self, name)))

    def effective_beta(self, has_negatives: bool) -> float:
        return effective_beta(self.mode, self.beta, has_negatives)


DEFAULT = GuidanceSettings()


def effective_beta(mode: str, beta: float, has_negatives: bool) -> float:
    """β as it acts on a step: the negative-audio term needs ``nag`` mode and negative audio."""
    return float(beta) if mode == "nag" and has_negatives else 0.0
