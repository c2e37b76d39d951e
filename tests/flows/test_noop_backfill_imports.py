"""A backfill with nothing to do loads no model code (issue #18 §4: the no-op run's constant).

The library is registered and marked done the way the pipeline's first pass leaves it
(tasks/discovery.py, then ``done``), then the real entry points run in fresh processes:
`stepfoley run` (embedded: local Prefect API, SQLite) and the ``backfill-library`` flow called
as a worker would (no preload). Neither may import torch, diffusers or transformers, and both
must still record the run (discovery and report task runs, "nothing to do"). A new file in the
same library must then be processed for real by the same command: the imports and the preload
were skipped, not lost.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sql.repository import set_asset_status
from tasks import discovery, runs
from tasks.config import load_settings
from tasks.ffmpeg_bin import run_ffmpeg
from tasks.media_paths import to_uri
from tests.flows.conftest import stepfoley

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "diffusers", "transformers", "scipy")


def _library(root: Path, n: int) -> Path:
    base = root.parent / "base.mp4"
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc=size=64x36:rate=25:duration=1", "-c:v", "libx264",
                "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-movflags", "+faststart", "-y",
                str(base)])
    clip, then = base.read_bytes(), time.time() - 3600
    root.mkdir(parents=True)
    for i in range(n):
        p = root / f"clip{i}.mp4"
        p.write_bytes(clip + struct.pack(">I4sQ", 16, b"free", i))
        os.utime(p, (then, then))
    return root


def _all_done(lib: Path, data: Path) -> None:
    s = load_settings({"data_dir": data}).to_json()
    run_id = runs.start_run("test-setup", {"library": str(lib)}, s)
    with runs.session(s) as db:
        for item in discovery.discover(to_uri(lib), s, run_id):
            set_asset_status(db, item["asset_id"], "done")


def _imported(stderr: str) -> set[str]:
    """Top-level packages named by ``-X importtime`` lines."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


@pytest.mark.heavy  # ~35 s (three CLI runs): the default run is at its 15-minute budget
@pytest.mark.timeout(900)
def test_noop_run_loads_no_model_code_and_new_file_still_runs(tmp_path: Path) -> None:
    lib, data = _library(tmp_path / "lib", 5), tmp_path / "data"
    _all_done(lib, data)
    env = {"PREFECT_HOME": str(tmp_path / "prefect"), "HF_HUB_OFFLINE": "1"}

    proc = stepfoley(["--data-dir", str(data), "run", str(lib)], env={**env, "PYTHONPROFILEIMPORTTIME": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "nothing to do" in proc.stdout
    loaded = _imported(proc.stderr)
    assert "prefect" in loaded and "sqlalchemy" in loaded  # the probe sees imports at all
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))

    # the worker's entry: the flow itself, in a fresh process
    code = ("import json, sys\nfrom flows.backfill import backfill_library\n"
            "out = backfill_library(sys.argv[1], {'data_dir': sys.argv[2]})\n"
            f"print(json.dumps({{'summary': out, 'heavy': [m for m in {HEAVY!r} if m in sys.modules]}}))\n")
    flow = subprocess.run([sys.executable, "-c", code, to_uri(lib), str(data)], cwd=REPO,
                          capture_output=True, text=True, timeout=600, env={**os.environ, **env})
    assert flow.returncode == 0, flow.stdout[-3000:] + flow.stderr[-3000:]
    result = json.loads(flow.stdout.strip().splitlines()[-1])
    assert result["heavy"] == [], result

    # work appears: the same command imports the pipeline and processes it
    (lib / "clip0.mp4").rename(lib / "moved.mp4")  # same content: still done, no work
    new = lib / "new.mp4"
    new.write_bytes((lib / "clip1.mp4").read_bytes() + struct.pack(">I4sQ", 16, b"free", 99))
    then = time.time() - 3600
    os.utime(new, (then, then))
    proc = stepfoley(["--data-dir", str(data), "run", str(lib), "--steps", "2", "--tracks", "1"],
                     env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    status = stepfoley(["--data-dir", str(data), "status", "--json"], env=env)
    rows = {Path(r["path"]).name: r["status"] for r in json.loads(status.stdout)}
    assert rows["new.mp4"] == "done" and rows["moved.mp4"] == "done", rows
