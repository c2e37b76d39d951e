"""Model commands: `stepfoley convert-mmaudio` and `stepfoley train`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from tasks.config import ConfigError

CTX = {"help_option_names": ["-h", "--help"]}


def _config_arg(value: str) -> str | dict[str, Any]:
    """A preset name, or a JSON file of constructor arguments like the fixture configs."""
    p = Path(value)
    if p.suffix == ".json" or p.is_file():
        try:
            return json.loads(p.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read config {value}: {exc}") from exc
    from models.generation.mmaudio import PRESETS

    if value not in PRESETS:
        raise ConfigError(f"unknown preset {value!r}; choose one of {', '.join(sorted(PRESETS))} "
                          "or give a JSON file")
    return value


def register(cli: click.Group) -> None:
    @cli.command("convert-mmaudio", context_settings=CTX)
    @click.option("--checkpoint", required=True, type=click.Path(exists=True, dir_okay=False),
                  help="Official MMAudio weights (.pth or .safetensors).")
    @click.option("--config", "config", required=True,
                  help="Preset (small_16k, small_44k, medium_44k, large_44k, large_44k_v2) or JSON.")
    @click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
                  help="Output component directory (diffusers layout).")
    def convert_mmaudio_cmd(checkpoint: str, config: str, out: Path) -> None:
        """Convert official MMAudio weights into a diffusers-format transformer directory."""
        from models.generation.convert import convert_mmaudio

        try:
            path = convert_mmaudio(checkpoint, _config_arg(config), out)
        except RuntimeError as exc:  # strict load: a key or shape mismatch with the preset
            raise ConfigError(f"{checkpoint} does not match config {config}: "
                              f"{' '.join(str(exc).split())[:300]}") from exc
        click.echo(f"wrote {path}")

    @cli.command("train", context_settings=CTX)
    @click.argument("component", type=click.Choice(["base", "guidance", "captioner", "scorer",
                                                    "evaluator", "all"]))
    @click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
                  help="Bundle directory to write (checkpoints and logs go under it).")
    @click.option("--seed", type=int, default=0, show_default=True)
    @click.option("--threads", type=click.IntRange(1, 64), default=2, show_default=True,
                  help="torch threads (results are deterministic per seed and thread count).")
    @click.option("--steps", type=click.IntRange(1), help="Override the component's step count.")
    @click.option("--minutes", type=float, help="Wall-time budget for `all` (default 60).")
    def train_cmd(component: str, out: Path, seed: int, threads: int, steps: int | None,
                  minutes: float | None) -> None:
        """Train the default bundle (or one component of it) on FoleyWorld, resumably."""
        from models.training import train

        result = train.train_component(component, out, seed=seed, threads=threads, steps=steps,
                                       minutes=minutes)
        click.echo(json.dumps(result, indent=2, default=str))
