"""The demo captioner on footage that is not FoleyWorld says so: the keyframe distance from
FoleyWorld (models/prompting/domain_check.py) flags a real-ish clip and not a held-out
FoleyWorld scene; the note names the captioner, what it knows and how to bring a VLM or prompts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from models.prompting.captioner import load_captioner
from models.prompting.domain_check import check_domain
from models.training.foleyworld import make_scene
from tasks.ffmpeg_bin import ffmpeg_path
from tasks.shot_prompts import propose_scene_prompts

BUNDLE = Path(__file__).resolve().parents[2] / "models" / "weights" / "foleyworld-tiny"


def _decode(args: list[str]) -> np.ndarray:
    """As the stage reads keyframes: 4 fps, 64 px."""
    raw = subprocess.run([ffmpeg_path(), "-nostdin", "-loglevel", "error", *args, "-t", "4", "-vf",
                          "fps=4,scale=64:64:flags=lanczos", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, 64, 64, 3)


def _foleyworld(tmp_path: Path, seed: int) -> np.ndarray:
    scene = make_scene(seed, duration=4.0, size=128)
    path = tmp_path / f"fw{seed}.mp4"
    subprocess.run([ffmpeg_path(), "-nostdin", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
                    "-s", "128x128", "-r", "25", "-i", "-", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)],
                   input=scene.frames.tobytes(), check=True)
    return _decode(["-i", str(path)])


@pytest.mark.parametrize("source", ["testsrc2=size=320x240:rate=25", "mandelbrot=size=320x240:rate=25"])
def test_real_ish_footage_is_flagged(source: str) -> None:
    check = check_domain(_decode(["-f", "lavfi", "-i", source]))
    assert check.out_of_domain, check


def test_held_out_foleyworld_is_not(tmp_path: Path) -> None:
    for seed in (2_000_101, 2_000_102, 2_000_103):  # test split
        check = check_domain(_foleyworld(tmp_path, seed))
        assert not check.out_of_domain, (seed, check)


def test_the_note_names_captioner_knowledge_and_remedies(tmp_path: Path) -> None:
    captioner = load_captioner(BUNDLE)
    street = propose_scene_prompts(_decode(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"]), captioner, k=2)
    note = street.domain["note"]
    assert "foleyworld" in note and "clock" in note and "--captioner DIR" in note and "--prompts" in note
    assert note in street.notes and street.domain["distance"] > 4
    world = propose_scene_prompts(_foleyworld(tmp_path, 2_000_104), captioner, k=2)
    assert "note" not in world.domain and world.domain["distance"] < 4
