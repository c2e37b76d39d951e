"""The CLI contract: --help everywhere, exit 2 with one line on bad usage/configuration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flows.cli import cli, main

STEPFOLEY = [sys.executable, "-m", "flows"]


def run(args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([*STEPFOLEY, *args], capture_output=True, text=True, env=full_env,
                          cwd=cwd, timeout=300)


def _all_commands(group, prefix=()):  # type: ignore[no-untyped-def]
    for name, cmd in group.commands.items():
        yield (*prefix, name)
        if hasattr(cmd, "commands"):
            yield from _all_commands(cmd, (*prefix, name))


@pytest.mark.parametrize("path", [(), *sorted(_all_commands(cli))], ids=lambda p: " ".join(p) or "root")
def test_help_everywhere(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*path, "--help"]) == 0
    assert "Usage:" in capsys.readouterr().out


def test_unknown_option_exits_2_with_one_line(tmp_path: Path) -> None:
    proc = run(["--data-dir", str(tmp_path), "status", "--frobnicate"])
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--frobnicate" in lines[0] and "Traceback" not in proc.stderr


def test_unreachable_database_exits_2(tmp_path: Path) -> None:
    proc = run(["--data-dir", str(tmp_path), "--db",
                "postgresql+psycopg://nobody:secret@127.0.0.1:9/none?connect_timeout=2", "status"])
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "cannot reach database" in lines[0]
    assert "secret" not in proc.stderr  # the password is redacted


def test_invalid_database_url_exits_2(tmp_path: Path) -> None:
    proc = run(["--data-dir", str(tmp_path), "--db", "nosuchdialect://x", "db", "upgrade"])
    assert proc.returncode == 2 and "not valid" in proc.stderr


def test_unwritable_data_dir_exits_2(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = run(["--data-dir", str(blocker / "data"), "status"])
    assert proc.returncode == 2 and "not writable" in proc.stderr


def test_bad_environment_value_exits_2(tmp_path: Path) -> None:
    proc = run(["--data-dir", str(tmp_path), "status"], env={"STEPFOLEY_STEPS": "many"})
    assert proc.returncode == 2 and "STEPFOLEY_STEPS" in proc.stderr


def test_status_json_on_new_database_is_empty_list(tmp_path: Path) -> None:
    proc = run(["--data-dir", str(tmp_path / "d"), "status", "--json"])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


def test_db_upgrade_sqlite_is_idempotent(tmp_path: Path) -> None:
    for _ in range(2):
        proc = run(["--data-dir", str(tmp_path), "db", "upgrade"])
        assert proc.returncode == 0, proc.stderr
        assert "at revision" in proc.stdout
    assert (tmp_path / "stepfoley.db").exists()


def test_flags_beat_environment(tmp_path: Path) -> None:
    env_dir, flag_dir = tmp_path / "env", tmp_path / "flag"
    proc = run(["--data-dir", str(flag_dir), "db", "upgrade"], env={"STEPFOLEY_DATA_DIR": str(env_dir)})
    assert proc.returncode == 0, proc.stderr
    assert (flag_dir / "stepfoley.db").exists() and not (env_dir / "stepfoley.db").exists()


@pytest.mark.postgres
def test_db_upgrade_postgres(postgres_url: str, tmp_path: Path) -> None:
    proc = run(["--data-dir", str(tmp_path), "--db", postgres_url, "db", "upgrade"])
    assert proc.returncode == 0, proc.stderr
    proc = run(["--data-dir", str(tmp_path), "--db", postgres_url, "status", "--json"])
    assert proc.returncode == 0 and json.loads(proc.stdout) == []


def test_convert_mmaudio_cli_roundtrip(tmp_path: Path) -> None:
    """The official-layout fixture converts to a diffusers directory that reproduces `flow`."""
    import torch
    from safetensors.torch import load_file

    from models.generation.mmaudio import MMAudio

    from tests.mmaudio_fixtures import mmaudio_fixtures

    fx = mmaudio_fixtures()
    out = tmp_path / "conv"
    proc = run(["--data-dir", str(tmp_path / "d"), "convert-mmaudio", "--checkpoint",
                str(fx / "mmaudio_tiny_v2.safetensors"), "--config", str(fx / "mmaudio_tiny_v2.json"),
                "--out", str(out)])
    assert proc.returncode == 0, proc.stderr
    net = MMAudio.from_pretrained(out).eval()
    io = load_file(fx / "mmaudio_tiny_v2_io.safetensors")
    with torch.no_grad():
        flow = net(io["latent"], io["clip_f"], io["sync_f"], io["text_f"], io["t"])
    assert (flow - io["flow"]).abs().max() < 1e-4
    bad = run(["--data-dir", str(tmp_path / "d"), "convert-mmaudio", "--checkpoint",
               str(fx / "mmaudio_tiny_v2.safetensors"), "--config", "small_16k", "--out", str(tmp_path / "x")])
    assert bad.returncode == 2 and "does not match" in bad.stderr
