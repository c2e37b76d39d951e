"""Issue #21: a clip with an audible soundtrack, alone or first in a library, ends done.

The prompts stage loads the audio taggers for an audible original soundtrack; with the shipped
bundle the captioner and the network were loading on the preload thread at the same moment,
and two threads importing diffusers at once made the stage fail in 4 of 6 runs with
"cannot import name 'ConfigMixin' from partially initialized module". Several runs, each in a
fresh data dir (the failure needed a cold process), so a race that strikes one run in two
cannot pass by luck (it failed 4 times in 6 alone, 5 in 6 first in a library).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tasks.ffmpeg_bin import ffmpeg_path
from tests.flows.conftest import stepfoley

pytestmark = pytest.mark.slow


def _plain_clip(path: Path) -> Path:
    """H.264 + AAC, an audible sine under a test pattern: the most ordinary upload there is."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([ffmpeg_path(), "-nostdin", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
                    "-t", "3", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(path)],
                   check=True)
    return path


def _statuses(data: Path) -> dict[str, tuple[str, str | None]]:
    proc = stepfoley(["--data-dir", str(data), "status", "--json"])
    assert proc.returncode == 0, proc.stderr
    return {Path(r["path"]).name: (r["status"], r.get("error")) for r in json.loads(proc.stdout)}


def _run(data: Path, lib: Path) -> subprocess.CompletedProcess[str]:
    return stepfoley(["--data-dir", str(data), "run", str(lib), "--steps", "2", "--tracks", "1"])


def test_audible_clip_alone_is_done_every_time(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    _plain_clip(lib / "plain.mp4")
    for i in range(3):
        data = tmp_path / f"data{i}"
        proc = _run(data, lib)
        assert "partially initialized" not in proc.stdout + proc.stderr
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert _statuses(data) == {"plain.mp4": ("done", None)}


@pytest.mark.heavy
def test_audible_clip_first_in_a_library_is_done(tmp_path: Path, demo_footage: Path) -> None:
    lib = tmp_path / "lib"
    _plain_clip(lib / "a-plain.mp4")  # discovery is in name order: the audible clip comes first
    (lib / "b-three-shots.mp4").write_bytes((demo_footage / "three-shots.mp4").read_bytes())
    for i in range(1):
        data = tmp_path / f"data{i}"
        proc = _run(data, lib)
        assert "partially initialized" not in proc.stdout + proc.stderr
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert {k: v[0] for k, v in _statuses(data).items()} == {"a-plain.mp4": "done",
                                                                 "b-three-shots.mp4": "done"}
