"""What every ``stepfoley`` command shares: the click context settings and the run settings of a
command (the group's ``--data-dir``/``--db`` plus the command's own options over the
environment and the defaults). flows/cli.py and each flows/cli_*.py import it; it imports none
of them, so the CLI's modules form a tree.
"""

from __future__ import annotations

from typing import Any

import click

from tasks.config import Settings, ensure_data_dir, export_environment, load_settings

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def cli_settings(ctx: click.Context, **overrides: Any) -> Settings:
    """The command's settings (options given on the command line win; ``None`` = not given),
    with the data directory created and the environment exported for child processes."""
    base = dict(ctx.obj or {})
    base.update({k: v for k, v in overrides.items() if v is not None})
    settings = load_settings(base)
    ensure_data_dir(settings)
    export_environment(settings)
    return settings
