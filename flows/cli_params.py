"""Click parameter types for the guidance settings: the ranges of their one home
(``models.generation.guidance_settings``), so a bad flag is a usage error (one line, exit 2)
before anything starts."""

from __future__ import annotations

from typing import Any, Callable

import click

from models.generation.guidance_settings import ALPHA_RANGE, BETA_RANGE, SEED_RANGE, STEPS_RANGE, \
    GuidanceError, check_alpha, check_beta, check_seed, check_steps


class Checked(click.ParamType):
    """A value passed through one of the guidance checkers."""

    def __init__(self, name: str, check: Callable[[Any, str], Any], metavar: str) -> None:
        self.name = name
        self._check = check
        self._metavar = metavar

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return self._metavar

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return self._check(value, param.name if param is not None and param.name else self.name)
        except GuidanceError as exc:
            self.fail(str(exc), param, ctx)


ALPHA = Checked("alpha", check_alpha, f"[{ALPHA_RANGE[0]:g}-{ALPHA_RANGE[1]:g}]")
BETA = Checked("beta", check_beta, f"[{BETA_RANGE[0]:g}-{BETA_RANGE[1]:g}]")
STEPS = Checked("steps", check_steps, f"[{STEPS_RANGE[0]}-{STEPS_RANGE[1]}]")
SEED = Checked("seed", check_seed, f"[{SEED_RANGE[0]}-2^63-1]")
