"""`stepfoley models pull`: the official MMAudio release (converted into a bundle) or a VLM
captioner, from the Hugging Face hub (HF_ENDPOINT, HF_HUB_OFFLINE honoured)."""

from __future__ import annotations

import json
from pathlib import Path

import click

CTX = {"help_option_names": ["-h", "--help"]}
PRESETS = ["small_16k", "small_44k", "medium_44k", "large_44k", "large_44k_v2"]


def register(cli: click.Group) -> None:
    @cli.group("models", context_settings=CTX)
    def models_group() -> None:
        """Get model weights (the only commands that go online)."""

    @models_group.command("pull", context_settings=CTX)
    @click.option("--variant", type=click.Choice(PRESETS),
                  help="Pull this MMAudio preset's release files and convert them into <DIR>/bundle.")
    @click.option("--captioner", "captioner_repo", metavar="REPO",
                  help="Pull a transformers VLM (e.g. HuggingFaceTB/SmolVLM-256M-Instruct) into DIR, "
                       "for --captioner DIR.")
    @click.option("--to", "to", required=True, type=click.Path(file_okay=False, path_type=Path))
    @click.option("--revision", help="Hub revision (branch, tag or commit) of the repository.")
    @click.option("--ext-weights-url", metavar="URL",
                  help="Fetch ext_weights/ (VAE, 16k vocoder, Synchformer) from URL/<name> instead of the hub, "
                       "e.g. https://github.com/hkchengrex/MMAudio/releases/download/v0.1")
    @click.option("--config", "config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                  help="JSON of per-component sizes for a release that is not the official sizes (tests).")
    @click.option("--no-md5-check", is_flag=True, help="Do not check the files against MMAudio's md5 table.")
    @click.option("--force", is_flag=True, help="Replace an existing bundle.")
    def pull(variant: str | None, captioner_repo: str | None, to: Path, revision: str | None,
             ext_weights_url: str | None, config: Path | None, no_md5_check: bool, force: bool) -> None:
        """Download (huggingface_hub) and, for --variant, convert; prints what it wrote."""
        # CLI start-up: torch and huggingface_hub load only for this command.
        from models.generation.bundle import bundle_identity
        from tasks.config import ConfigError  # (same reason)
        from tasks.model_pull import pull_captioner, pull_release  # (same reason)

        if (variant is None) == (captioner_repo is None):
            raise ConfigError("give exactly one of --variant PRESET or --captioner REPO")
        if captioner_repo:
            path = pull_captioner(captioner_repo, to, revision=revision)
            click.echo(f"wrote {path} (captioner {captioner_repo}; use --captioner {path})")
            return
        overrides = json.loads(config.read_text()) if config else None
        bundle = pull_release(variant, to, revision=revision, ext_weights_url=ext_weights_url, force=force,
                              verify_md5=not no_md5_check, overrides=overrides)
        click.echo(f"wrote {bundle} ({variant}, bundle {bundle_identity(bundle)['bundle_id']}; use --bundle {bundle})")
