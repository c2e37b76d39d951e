"""Review-loop commands: `stepfoley dashboard` and `stepfoley regenerate`."""
from __future__ import annotations

import json
import os

import click

from flows.cli_common import cli_settings
from flows.cli_params import BETA, SEED


def register(cli: click.Group) -> None:
    """Add the review commands to the top-level CLI (picked up by flows.cli)."""

    @cli.command()
    @click.option("--host", default="127.0.0.1", show_default=True,
                  help="Bind address (loopback by default: the dashboard has no user accounts).")
    @click.option("--port", default=8765, show_default=True, type=int)
    @click.option("--db", "db_url", metavar="URL", help="Database URL (overrides --db of the group).")
    @click.pass_context
    def dashboard(ctx: click.Context, host: str, port: int, db_url: str | None) -> None:
        """Serve the dashboard; write actions only with STEPFOLEY_DASHBOARD_TOKEN set."""
        # CLI start-up: the web server and the dashboard load only for this command.
        import uvicorn

        from flows.dashboard.app import create_app  # CLI start-up, as above

        s = cli_settings(ctx, database_url=db_url)
        token = os.environ.get("STEPFOLEY_DASHBOARD_TOKEN") or None
        if token:
            # Write actions run regenerate_track in this process: fork its Prefect API now,
            # while this process has one thread, so it ends with the dashboard even when that
            # is killed (Prefect's own server, started later from a thread, outlived a
            # dashboard stopped with SIGKILL; flows/prefect_api.py).
            from flows.prefect_api import start_local_api  # CLI start-up, as above

            start_local_api()
        app = create_app(s.db_url, s.data_dir, token, settings=s.to_json())
        uvicorn.run(app, host=host, port=port, log_level="info")

    @cli.command()
    @click.argument("asset")
    @click.argument("scene", type=int)
    @click.argument("track", type=int)
    @click.option("--prompt", help="New prompt text for this track.")
    @click.option("--seed", type=SEED, help="Seed (default: a new derived seed).")
    @click.option("--beta", type=BETA, help="NAG strength β.")
    @click.option("--delete", is_flag=True, help="Remove the track from the mix (kept in history).")
    @click.pass_context
    def regenerate(ctx: click.Context, asset: str, scene: int, track: int, prompt: str | None,
                   seed: int | None, beta: float | None, delete: bool) -> None:
        """Regenerate (or delete) one track of one scene, then re-mix and re-mux the asset."""
        # CLI start-up: the flow (Prefect, torch) loads only for this command.
        from flows.prefect_api import local_run_settings, start_local_api
        from flows.regenerate import regenerate_track  # CLI start-up, as above

        s = cli_settings(ctx)

        api = start_local_api()  # forked, ends with this process (flows/prefect_api.py)
        with local_run_settings(api):
            result = regenerate_track(asset, scene, track, prompt=prompt, seed=seed, beta=beta,
                                      delete=delete, settings=s.to_json())
        click.echo(json.dumps(result, default=str, indent=2))
