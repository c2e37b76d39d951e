"""`stepfoley prompts VIDEO`: each scene's missing-sound prompts, without generating audio."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from flows.cli_common import cli_settings
from tasks.media_paths import to_uri

CTX = {"help_option_names": ["-h", "--help"]}


def register(cli: click.Group) -> None:
    @cli.command("prompts", context_settings=CTX)
    @click.argument("video", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.option("--captioner", type=click.Path(file_okay=False, path_type=Path),
                  help="A captioner directory (a bundle, or a transformers VLM) instead of the bundle's.")
    @click.option("-k", "tracks", type=click.IntRange(1, 16), help="Prompts per scene (default 5).")
    @click.option("--bundle", type=click.Path(file_okay=False, path_type=Path))
    @click.option("--prompts", "prompts_csv", type=click.Path(dir_okay=False, path_type=Path),
                  help="CSV of user prompts to merge.")
    @click.option("--prompts-mode", type=click.Choice(["extend", "replace"]))
    @click.pass_context
    def prompts_cmd(ctx: click.Context, video: Path, as_json: bool, captioner: Path | None,
                    **opts: Any) -> None:
        """Print each scene's prompts (salience order, with scores) and its windows."""
        # CLI start-up: the prompt models (torch) load only for this command.
        from tasks.asset_prompts import prompts_for_asset
        from tasks.ingest import ingest_path  # CLI start-up, as above
        from tasks.scenes import detect_shots, plan_windows  # CLI start-up, as above

        settings = cli_settings(ctx, **opts)
        if captioner is not None:
            from dataclasses import replace

            settings = replace(settings, bundle=captioner)
        facts = ingest_path(video)
        shots = detect_shots(video, min_shot_s=settings.min_shot_s)
        windows = [{"scene_index": w.shot_index, "window_index": w.window_index,
                    "start_s": w.start_s, "end_s": w.end_s, "shot_start_s": w.shot_start_s,
                    "shot_end_s": w.shot_end_s}
                   for w in plan_windows(shots, settings.window_s, settings.overlap_s)]
        per_shot = prompts_for_asset(to_uri(video), facts.sha256, windows, settings)
        scenes = []
        for shot in shots:
            sp = per_shot[shot.index]
            scenes.append({"scene": shot.index, "start_s": shot.start_s, "end_s": shot.end_s,
                           "windows": [[w["start_s"], w["end_s"]] for w in windows
                                       if w["scene_index"] == shot.index],
                           "prompts": [{"order": p.order, "text": p.text, "score": p.score,
                                        "source": p.source} for p in sp.prompts],
                           "dropped": [{"text": d.text, "reason": d.reason, "stage": d.stage}
                                       for d in sp.dropped],
                           "notes": sp.notes})
        if as_json:
            click.echo(json.dumps({"video": str(video), "sha256": facts.sha256, "scenes": scenes},
                                  indent=2))
            return
        for sc, shot in zip(scenes, shots):
            wins = ", ".join(f"{a:.2f}–{b:.2f}" for a, b in sc["windows"])
            click.echo(f"scene {sc['scene']}  {shot.start_s:.2f}–{shot.end_s:.2f} s  windows: {wins}")
            for line in per_shot[shot.index].describe():
                click.echo(f"  {line}")
