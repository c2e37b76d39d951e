"""`stepfoley parity DIR`: recompute every parity fixture in DIR with our code.

One line per output (fixture, output, max abs error, tolerance, verdict), then a summary line.
Exit 0 when every output is within tolerance, 1 when any is over, 2 when DIR holds no fixture.
Fixtures are recognised by their JSON's content (``models/mmaudio_family/parity.py``), so a
directory of fixtures at other sizes and seeds is checked the same way.
"""

from __future__ import annotations

from pathlib import Path

import click

from tasks.config import ConfigError

CTX = {"help_option_names": ["-h", "--help"]}


def register(cli: click.Group) -> None:
    @cli.command("parity", context_settings=CTX)
    @click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
    @click.option("--threads", type=click.IntRange(1, 64), default=1, show_default=True,
                  help="torch threads (the fixtures were made with one).")
    def parity_cmd(directory: Path, threads: int) -> int:
        """Check our MMAudio-family code against the official numbers in DIR's fixtures."""
        import torch

        # CLI start-up: the model code loads only for this command
        from models.mmaudio_family.parity import find_fixtures, fixture_rows

        torch.set_num_threads(threads)
        fixtures = find_fixtures(directory)
        if not fixtures:
            raise ConfigError(f"{directory}: no parity fixture found (expected <name>.json with a "
                              "component / official constructor, beside <name>_io.safetensors)")
        failed = total = 0
        for path, kind in fixtures:
            try:
                rows = fixture_rows(path, kind)
            except (OSError, KeyError, ValueError, RuntimeError) as exc:
                click.echo(f"{path.stem:<28} {'(could not recompute)':<36} {type(exc).__name__}: "
                           f"{' '.join(str(exc).split())[:200]} FAIL")
                failed += 1
                total += 1
                continue
            for row in rows:
                click.echo(row.line())
                failed += not row.ok
                total += 1
        click.echo(f"{total - failed}/{total} outputs within tolerance in {len(fixtures)} fixtures")
        return 1 if failed else 0
