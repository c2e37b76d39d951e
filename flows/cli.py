"""The ``stepfoley`` command line.

Exit codes: 0 success, 1 a run finished with failed assets recorded, 2 usage or
configuration error (one line on stderr, no traceback).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from flows import cli_eval, cli_extract, cli_models, cli_parity, cli_prompts, cli_pull, cli_review, cli_run
from flows.cli_common import CONTEXT, cli_settings
from tasks.config import ConfigError


@click.group(context_settings=CONTEXT)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Data directory (database, outputs, stems, logs). Env: STEPFOLEY_DATA_DIR.")
@click.option("--db", "database_url", metavar="URL",
              help="Database URL (default: SQLite in the data dir). Env: STEPFOLEY_DATABASE_URL.")
@click.version_option(package_name="stepfoley")
@click.pass_context
def cli(ctx: click.Context, data_dir: Path | None, database_url: str | None) -> None:
    """stepfoley: give silent footage its sound, one track per sound event (NAG)."""
    ctx.obj = {"data_dir": data_dir, "database_url": database_url}


@cli.group(context_settings=CONTEXT)
def db() -> None:
    """Database administration."""


@db.command("upgrade", context_settings=CONTEXT)
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply migrations (and views) to the configured database."""
    # CLI start-up: SQLAlchemy and Alembic load only for the commands that use them.
    from sql.migrate import current
    from tasks.database import open_database, redact  # CLI start-up, as above

    settings = cli_settings(ctx)
    open_database(settings, migrate=True)

    click.echo(f"database {redact(settings.db_url)} at revision {current(settings.db_url)}")


@cli.command(context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--status", "only", type=click.Choice(["pending", "running", "done", "failed"]),
              help="Only assets with this status.")
@click.option("--limit", type=click.IntRange(0), default=50, show_default=True,
              help="Assets per page (0: all of them, which on a large archive takes a while).")
@click.option("--page", type=click.IntRange(1), default=1, show_default=True, help="Which page.")
@click.pass_context
def status(ctx: click.Context, as_json: bool, only: str | None, limit: int, page: int) -> None:
    """One row per asset (by id, a page at a time): path, sha256, status, error, scenes,
    tracks, output, timings."""
    # CLI start-up: SQLAlchemy loads only for the commands that use it.
    from sql.repository import asset_status_rows, count_status_rows
    from sql.session import session_scope  # CLI start-up, as above
    from tasks.database import open_database  # CLI start-up, as above

    settings = cli_settings(ctx)
    engine = open_database(settings)
    with session_scope(engine) as session:
        total = count_status_rows(session, status=only)
        rows = [dict(r) for r in asset_status_rows(session, status=only, limit=limit or None,
                                                   offset=(page - 1) * limit)]
    first = (page - 1) * limit + 1
    shown = (f"assets {first}–{first + len(rows) - 1} of {total}" if rows
             else f"no assets on page {page} of {total}")
    more = bool(limit) and (page > 1 or len(rows) < total)
    if as_json:
        click.echo(json.dumps(rows, default=str, indent=2))
        if more:  # the JSON stays a plain list; where it is in the whole goes to stderr
            click.echo(f"{shown} (--page N, --limit 0 for all)", err=True)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=shown if more else f"{len(rows)} assets")
    cols = ["path", "status", "scenes", "tracks", "output", "error"]
    for c in cols:
        table.add_column(c, overflow="fold")
    for r in rows:
        table.add_row(*[str(r.get(c) if r.get(c) is not None else "") for c in cols])
    Console().print(table)
    for r in rows:  # who made the prompts, when that captioner does not know the footage
        if r.get("prompts_note"):
            click.echo(f"note: {r['path']}: {r['prompts_note']}")
    if more:
        click.echo(f"{shown}: --page N for more, --limit 0 for all, --status S to filter")


for _commands in (cli_run, cli_models, cli_pull, cli_prompts, cli_review, cli_eval, cli_extract,
                  cli_parity):
    _commands.register(cli)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point with the project's exit-code contract."""
    try:
        rv = cli.main(args=argv, prog_name="stepfoley", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
        return 2
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "stepfoley"
        click.echo(f"stepfoley: error: {exc.format_message()} (see '{where} --help')", err=True)
        return 2
    except ConfigError as exc:
        click.echo(f"stepfoley: error: {exc}", err=True)
        return 2
    except click.Abort:
        click.echo("stepfoley: aborted", err=True)
        return 130
    except click.exceptions.Exit as exc:
        return exc.exit_code
    return rv if isinstance(rv, int) else 0

