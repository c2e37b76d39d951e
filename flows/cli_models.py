"""Model commands: `stepfoley convert-mmaudio` and `stepfoley train`.

`convert-mmaudio` has two forms: ``--from DIR --variant PRESET --out BUNDLE`` converts the whole
official release into a bundle (``models.generation.convert.convert_release``); ``--checkpoint FILE
--config PRESET|JSON --out DIR`` converts one network checkpoint into a ``transformer/`` folder.
With ``--from``, ``--config`` is a JSON file of per-component constructor sizes
(``{"network": {...}, "vae": {...}, "vocoder": {...}, "synchformer": {...}}``, see
``models.mmaudio_family.release``) for releases that are not at the official sizes — the tests'
tiny release uses it.
"""

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
    # CLI start-up: torch and the model code load only when a model command runs
    from models.generation.mmaudio import PRESETS

    if value not in PRESETS:
        raise ConfigError(f"unknown preset {value!r}; choose one of {', '.join(sorted(PRESETS))} "
                          "or give a JSON file")
    return value


def _convert_release(release: Path, variant: str, out: Path, config: str | None, vocoder_dir: Path | None,
                     clip_dir: Path | None, force: bool) -> None:
    # CLI start-up: loaded only when this command runs
    from models.generation.bundle import bundle_identity
    from models.generation.convert import convert_release  # (same reason)
    from models.mmaudio_family.release import ReleaseError  # (same reason)

    overrides = None
    if config is not None:
        loaded = _config_arg(config)
        if not isinstance(loaded, dict):
            raise ConfigError("with --from, --config is a JSON file of per-component sizes, not a preset name")
        overrides = loaded
    try:
        path = convert_release(release, variant, out, overrides=overrides, vocoder_dir=vocoder_dir,
                               clip_dir=clip_dir, force=force)
    except ReleaseError as exc:
        raise ConfigError(str(exc)) from exc
    click.echo(f"wrote {path} ({variant}, bundle {bundle_identity(path)['bundle_id']})")


def register(cli: click.Group) -> None:
    @cli.command("convert-mmaudio", context_settings=CTX)
    @click.option("--from", "release", type=click.Path(exists=True, file_okay=False, path_type=Path),
                  help="Directory of the official MMAudio release (weights/, ext_weights/, "
                       "bigvgan_v2_44khz_128band_512x/, DFN5B-CLIP-ViT-H-14-384/): writes a complete bundle.")
    @click.option("--variant", type=click.Choice(["small_16k", "small_44k", "medium_44k", "large_44k",
                                                  "large_44k_v2"]),
                  help="Which network of the release (with --from).")
    @click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False),
                  help="Single-file form: one official network checkpoint (.pth or .safetensors).")
    @click.option("--config", "config",
                  help="Single-file form: preset or JSON of constructor arguments. With --from: a JSON "
                       "file of per-component sizes (network, vae, vocoder, synchformer) for releases "
                       "that are not the official sizes, e.g. test releases.")
    @click.option("--vocoder-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
                  help="BigVGAN-v2 directory, if not inside --from (44k variants).")
    @click.option("--clip-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
                  help="DFN5B open_clip directory, if not inside --from.")
    @click.option("--force", is_flag=True, help="Replace --out if it exists.")
    @click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
                  help="Bundle directory (with --from) or transformer component directory (--checkpoint).")
    def convert_mmaudio_cmd(release: Path | None, variant: str | None, checkpoint: str | None,
                            config: str | None, vocoder_dir: Path | None, clip_dir: Path | None,
                            force: bool, out: Path) -> None:
        """Convert the official MMAudio release into a bundle (--from DIR --variant PRESET), or one
        network checkpoint into a transformer directory (--checkpoint FILE --config PRESET)."""
        if release is not None:
            if checkpoint is not None or variant is None:
                raise click.UsageError("--from needs --variant and excludes --checkpoint")
            _convert_release(release, variant, out, config, vocoder_dir, clip_dir, force)
            return
        if checkpoint is None or config is None:
            raise click.UsageError("give --from DIR --variant PRESET, or --checkpoint FILE --config PRESET")
        # CLI start-up: loaded only when this command runs
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
    @click.option("--minutes", type=float,
                  help="Wall-time cap (none by default: every component runs its whole schedule, "
                       "≈ 72 min for `all` at --threads 1 on a 2-core box; a capped run is not "
                       "step-deterministic and says so in its log).")
    @click.option("--features", type=click.Path(exists=True, file_okay=False, path_type=Path),
                  help="guidance: train on features extracted from real footage "
                       "(`stepfoley extract-features`) instead of FoleyWorld; --out is then the "
                       "bundle whose network the branch is for (any preset).")
    @click.option("--batch", type=click.IntRange(1), default=8, show_default=True,
                  help="guidance: pairs per micro-batch (per process).")
    @click.option("--grad-accum", type=click.IntRange(1), default=1, show_default=True,
                  help="guidance: micro-batches per optimiser step.")
    @click.option("--t-mean", type=float, default=None,
                  help="Location of the logit-normal flow time (negative: more steps near the noise "
                       "end, where the conditions decide the timing). Default: the shipped recipe's "
                       "(models/training/bundle_recipes.py).")
    @click.option("--pooled-cond/--no-pooled-cond", default=None,
                  help="guidance: the branch's time-pooled x̃ path. Default: the shipped recipe's.")
    def train_cmd(component: str, out: Path, seed: int, threads: int, steps: int | None,
                  minutes: float | None, features: Path | None, batch: int, grad_accum: int,
                  t_mean: float | None, pooled_cond: bool | None) -> None:
        """Train the default bundle (or one component of it) on FoleyWorld, resumably; the
        guidance branch also on real footage (--features), on several GPUs with torchrun."""
        from models.training import train  # CLI start-up: torch loads only for this command

        if features is not None:
            if component != "guidance":
                raise ConfigError("--features trains the guidance branch only (stepfoley train guidance)")
            from models.training.feature_shards import check_features  # CLI start-up: on use

            try:
                check_features(features, out)
            except (ValueError, OSError) as exc:
                raise ConfigError(str(exc)) from exc
            extra = {k: v for k, v in (("t_mean", t_mean), ("pooled_cond", pooled_cond)) if v is not None}
            result = train.train_guidance(out, seed=seed, threads=threads, steps=steps or train.GUIDANCE_STEPS,
                                          batch=batch, minutes=minutes, features=features,
                                          grad_accum=grad_accum, **extra)
        else:
            recipe = {"pooled_cond": pooled_cond,
                      "base_t_mean": t_mean if component in ("base", "all") else None,
                      "guidance_t_mean": t_mean if component == "guidance" else None}
            result = train.train_component(component, out, seed=seed, threads=threads, steps=steps,
                                           minutes=minutes, recipe=recipe)
        click.echo(json.dumps(result, indent=2, default=str))
