"""Guidance-training features from real footage (#17 §1–2): sources, skips by reason, shards
written atomically and resumed, through the real CLI and Prefect flow."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

from models.training.feature_shards import read_shards, shard_done, write_shard
from models.training.guidance_pairs import draw_pair, plan_segments
from tasks.ffmpeg_bin import ffmpeg_path
from tests.flows.conftest import stepfoley

SOUNDS = Path(__file__).resolve().parents[2] / "models" / "training" / "foleyworld_sounds"


def _clip(path: Path, seconds: float, audio: Path | None = None, silent: bool = False) -> Path:
    """A real picture (ffmpeg's test pattern) with a real recorded sound looped under it."""
    args = [ffmpeg_path(), "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
            "-i", f"testsrc2=size=96x64:rate=25:duration={seconds}"]
    if audio is not None:
        args += ["-stream_loop", "-1", "-i", str(audio)]
    elif silent:
        args += ["-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono"]
    args += ["-t", str(seconds), "-c:v", "libx264", "-pix_fmt", "yuv420p"]
    args += (["-c:a", "aac"] if audio is not None or silent else ["-an"]) + [str(path)]
    subprocess.run(args, check=True)
    return path


def test_segments_tile_and_pairs_never_overlap() -> None:
    segs = plan_segments(1.0, 10.5, 4.0)
    assert [(s.start_s, s.end_s) for s in segs] == [(1.0, 5.0), (5.0, 9.0)]
    assert plan_segments(0.0, 7.9, 4.0)[1:] == []  # one segment: no pair
    gen = torch.Generator().manual_seed(0)
    pairs = [draw_pair(3, gen) for _ in range(300)]
    assert all(t != c for t, c in pairs) and {p for p in pairs} == {(t, c) for t in range(3) for c in range(3) if t != c}
    with pytest.raises(ValueError):
        draw_pair(1, gen)


def test_a_half_written_shard_is_never_read(tmp_path: Path) -> None:
    x = {"c": {"latent": torch.ones(2, 3, 4), "clip": torch.zeros(2, 5, 6), "sync": torch.zeros(2, 8, 2)}}
    (tmp_path / ".shard-00000.123.tmp").write_bytes(b"half")
    assert not shard_done(tmp_path, 0)
    write_shard(tmp_path, 0, x, {"bundle_id": "b"})
    assert shard_done(tmp_path, 0, verify=True)
    (tmp_path / "shard-00000.safetensors").write_bytes(b"corrupted")
    assert shard_done(tmp_path, 0) and not shard_done(tmp_path, 0, verify=True)


@pytest.mark.heavy
def test_extract_skips_by_reason_and_resumes(tmp_path: Path, tiny_bundle: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    _clip(lib / "dog.mp4", 9.0, SOUNDS / "dog" / "dog_00.flac")
    _clip(lib / "rain.mp4", 12.5, SOUNDS / "rain" / "rain_00.flac")
    _clip(lib / "no-audio.mp4", 9.0)
    _clip(lib / "silent.mp4", 9.0, silent=True)
    _clip(lib / "short.mp4", 5.0, SOUNDS / "clock" / "clock_00.flac")
    (lib / "broken.mp4").write_bytes(os.urandom(5000))
    out = tmp_path / "feats"
    args = ["--data-dir", str(tmp_path / "data"), "extract-features", str(lib), "--out", str(out),
            "--bundle", str(tiny_bundle), "--shard-size", "2"]
    proc = stepfoley(args)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    index = json.loads((out / "index.json").read_text())
    assert index["num_clips"] == 2 and index["segment_s"] == 4.0
    assert index["skipped"] == {"no audio stream": 1, "silent": 1, "too short": 1, "unreadable": 1}
    clips = {c.key.split("-")[0]: c for c in read_shards(out)}
    assert set(clips) == {"dog", "rain"}
    assert clips["dog"].latent.shape[0] == 2 and clips["rain"].latent.shape[0] == 3  # 9 s / 12.5 s in 4 s
    assert clips["dog"].clip.shape[0] == clips["dog"].sync.shape[0] == 2
    assert not torch.equal(clips["rain"].latent[0], clips["rain"].latent[1])  # segments differ
    # a rerun redoes nothing finished (same bytes, same mtimes); a lost shard is redone
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*")}
    lost = sorted(out.glob("shard-*.json"))[-1]
    lost.unlink()
    proc = stepfoley(args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*")}
    assert {k: v for k, v in again.items() if not k.startswith(lost.stem)} == \
        {k: v for k, v in stamps.items() if not k.startswith(lost.stem)}
    assert json.loads((out / "index.json").read_text())["num_clips"] == 2
    # features of other weights or segments are never mixed into the same directory
    proc = stepfoley([*args, "--segment", "3"])
    assert proc.returncode != 0 and "use a new --out" in proc.stdout + proc.stderr
