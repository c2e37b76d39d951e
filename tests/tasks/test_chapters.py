"""Chapters in the muxed output: titled with each scene's transition, readable without
warnings by ffmpeg and by PyAV, in MKV, MP4 and MOV."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from tasks.ffmpeg_bin import ffmpeg_path
from tasks.mux import chapter_title, mux_output


def _inputs(tmp: Path) -> tuple[Path, dict]:
    src = tmp / "in.mp4"
    subprocess.run([ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=96x54:rate=25:duration=4", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                    str(src)], check=True)
    t = np.arange(4 * 48000) / 48000
    sf.write(tmp / "mix.flac", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 48000,
             format="FLAC", subtype="PCM_24")
    sf.write(tmp / "s1.flac", (0.2 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), 48000,
             format="FLAC", subtype="PCM_24")
    return src, {"mix_path": str(tmp / "mix.flac"),
                 "stems": [{"order": 1, "path": str(tmp / "s1.flac"), "title": "rain"}]}


def test_chapter_titles_name_the_transition() -> None:
    assert chapter_title(1, "start") == "Scene 1"
    assert chapter_title(2, "fade") == "Scene 2 (fade)"
    assert chapter_title(3, "dissolve") == "Scene 3 (dissolve)"
    assert chapter_title(4, None) == "Scene 4"


@pytest.mark.parametrize("container", ["mkv", "mp4", "mov"])
def test_chapters_read_back_without_warnings(tmp_path: Path, container: str) -> None:
    src, mix = _inputs(tmp_path)
    out = mux_output(src, mix, tmp_path / "out", container=container, name="c", has_original=False,
                     scene_starts=[[0.0, "start"], [1.0, "fade"], [2.52, "dissolve"], [3.2, "cut"]],
                     duration_s=4.0, fps=25.0)
    # ffmpeg reading the file: any warning (e.g. "Referenced QT chapter track not found") fails
    probe = subprocess.run([ffmpeg_path(), "-hide_banner", "-nostdin", "-loglevel", "warning",
                            "-i", out.uri, "-map", "0", "-c", "copy", "-f", "null", "-"],
                           capture_output=True, text=True)
    assert probe.returncode == 0 and probe.stderr.strip() == "", probe.stderr
    with av.open(out.uri) as c:
        chapters = c.chapters()
    got = [(round(float(ch["start"] * ch["time_base"]), 2), ch["metadata"].get("title")) for ch in chapters]
    assert got == [(0.0, "Scene 1"), (1.0, "Scene 2 (fade)"), (2.52, "Scene 3 (dissolve)"),
                   (3.2, "Scene 4 (cut)")]
    assert out.streams == (3 if container == "mkv" else 2)  # picture + mix (+ stem in MKV)


def test_plain_start_times_still_accepted(tmp_path: Path) -> None:
    src, mix = _inputs(tmp_path)
    out = mux_output(src, mix, tmp_path / "out", container="mp4", name="p", has_original=False,
                     scene_starts=[0.0, 2.0], duration_s=4.0, fps=25.0)
    with av.open(out.uri) as c:
        assert [ch["metadata"].get("title") for ch in c.chapters()] == ["Scene 1", "Scene 2"]
