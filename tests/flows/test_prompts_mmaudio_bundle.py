"""`stepfoley prompts` on a converted MMAudio bundle: the user's prompts are scored by the
bundle's own CLIP (before, a bundle without scorer/ recorded no score at all), at CLIP's size."""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from flows.cli import main
from models.generation.convert import convert_release
from tasks.ffmpeg_bin import ffmpeg_path
from tests.models.mmaudio_family.release_helpers import build_tiny_release


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("release")
    sizes = json.loads(build_tiny_release(root).read_text())
    return convert_release(root, "small_16k", tmp_path_factory.mktemp("out") / "mm", overrides=sizes)


def test_user_prompts_get_clip_scores(tmp_path: Path, bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    video = tmp_path / "street.mp4"
    subprocess.run([ffmpeg_path(), "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=96x64:rate=25:duration=2", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                    str(video)], check=True)
    sha = hashlib.sha256(video.read_bytes()).hexdigest()
    prompts = tmp_path / "p.csv"
    with prompts.open("w", newline="") as fh:
        csv.writer(fh).writerows([["asset", "prompt"], [sha, "a bicycle bell rings"], [sha, "traffic hums"]])
    code = main(["--data-dir", str(tmp_path / "data"), "prompts", str(video), "--bundle", str(bundle),
                 "--prompts", str(prompts), "--json"])
    assert code in (0, None)
    scenes = json.loads(capsys.readouterr().out)["scenes"]
    scores = [p["score"] for sc in scenes for p in sc["prompts"]]
    assert len(scores) == 2 and all(isinstance(s, float) for s in scores) and scores[0] != scores[1]
