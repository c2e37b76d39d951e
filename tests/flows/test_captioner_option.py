"""`stepfoley run --captioner DIR`: prompts from another captioner than the bundle's (#20 §4)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from sql.schema import Prompt
from sql.session import make_engine, session_scope
from tests.flows.conftest import stepfoley

pytestmark = pytest.mark.heavy

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "weights" / "foleyworld-tiny"


def test_run_takes_prompts_from_the_given_captioner(tmp_path: Path, tiny_bundle: Path,
                                                    demo_footage: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "three-shots.mp4").write_bytes((demo_footage / "three-shots.mp4").read_bytes())
    data = tmp_path / "data"
    base = ["--data-dir", str(data), "run", str(lib), "--bundle", str(tiny_bundle), "--steps", "2",
            "--tracks", "1", "--mode", "independent"]
    # the tiny bundle has no captioner and the clip no prompts: refused up front, one line
    refused = stepfoley(base)
    assert refused.returncode != 0 and "--captioner" in refused.stdout + refused.stderr
    proc = stepfoley([*base, "--captioner", str(SHIPPED)])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    with session_scope(make_engine(f"sqlite:///{data / 'stepfoley.db'}")) as s:
        rows = s.execute(select(Prompt.source, Prompt.captioner_id, Prompt.dropped)).all()
    kept = [r for r in rows if not r.dropped]
    assert kept and all(r.source == "captioner" and r.captioner_id and "foleyworld" in r.captioner_id
                        for r in kept)
