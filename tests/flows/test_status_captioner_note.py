"""Where a user looks: after `stepfoley run` with the demo bundle on footage that is not
FoleyWorld, `stepfoley status` says which captioner made the prompts, what it knows and how to
bring a VLM or prompts; the flag is recorded on the asset's prompt rows."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

from tasks.ffmpeg_bin import ffmpeg_path
from tests.flows.conftest import stepfoley


def test_status_notes_the_demo_captioner_on_real_footage(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    subprocess.run([ffmpeg_path(), "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=160x120:rate=25:duration=2", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                    str(lib / "street.mp4")], check=True)
    data = tmp_path / "data"
    proc = stepfoley(["--data-dir", str(data), "run", str(lib), "--steps", "2", "--tracks", "1",
                      "--mode", "independent"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (row,) = json.loads(stepfoley(["--data-dir", str(data), "status", "--json"]).stdout)
    assert "demo captioner foleyworld" in row["prompts_note"] and "--captioner DIR" in row["prompts_note"]
    table = stepfoley(["--data-dir", str(data), "status"]).stdout
    assert "note:" in table and "street.mp4" in table
    with sqlite3.connect(data / "stepfoley.db") as db:
        dist = db.execute("select captioner_ood_distance from prompt where dropped = 0").fetchall()
    assert dist and all(d[0] > 4 for d in dist)
