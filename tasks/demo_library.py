"""The bundled sample library: silent FoleyWorld footage written as real video files.

Five assets: two single scenes, one with hard cuts, one longer than 30 s with cuts, and one
with a partial original soundtrack (real audio on its first scene only, silence after), so
the demo exercises shots, windows, crossfades and "keep what the footage already has".
``library.json`` holds the ground truth (classes per scene, cut times). Frames are streamed
to ffmpeg's stdin scene by scene; each file is written under a temporary name and renamed,
and an existing file whose manifest entry matches is left alone (idempotent).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import soundfile as sf

from models.training import foleyworld as fw
from tasks.ffmpeg_bin import FFmpegError, ffmpeg_path

DEMO_SEED_BASE = fw.SPLITS["test"].start + 9000  # held-out seeds: the bundle never trained on them
ASSETS = (
    # name, scene durations (s), sources per scene (None = random), partial original audio
    ("kitchen-door.mp4", (6.0,), (2,), False),
    ("night-rain.mp4", (8.0,), (1,), False),
    ("three-shots.mp4", (5.0, 4.0, 6.0), (1, 2, 1), False),
    ("long-walk.mkv", (12.0, 9.0, 13.0), (2, 1, 2), False),
    ("with-original.mp4", (5.0, 6.0), (1, 2), True),
)


def _scene(seed: int, duration: float, n: int | None, size: int) -> fw.Scene:
    return fw.make_scene(seed, duration, n, size)


def _write(path: Path, scenes: Iterable[fw.Scene], size: int, original: np.ndarray | None) -> None:
    """Encode ``scenes`` (consumed one at a time, so only one scene's frames live in memory)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
    # No -nostdin: stdin carries the raw RGB frames.
    args = [ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{size}x{size}", "-r", str(fw.FPS),
            "-i", "pipe:0"]
    wav = None
    if original is not None:
        fd, name = tempfile.mkstemp(suffix=".wav")
        os.close(fd)
        wav = Path(name)
        sf.write(wav, original, fw.SAMPLE_RATE)
        args += ["-i", str(wav), "-map", "0:v", "-map", "1:a", "-c:a", "aac", "-b:a", "128k"]
    args += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p",
             "-g", "50", str(tmp)]
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        try:
            for sc in scenes:
                for frame in sc.frames:
                    proc.stdin.write(np.ascontiguousarray(frame).tobytes())  # type: ignore[union-attr]
            proc.stdin.close()  # type: ignore[union-attr]
        except BrokenPipeError:
            pass  # ffmpeg died early: its stderr below says why
        err = proc.stderr.read().decode("utf-8", "replace")  # type: ignore[union-attr]
        if proc.wait() != 0:
            raise FFmpegError(err.strip().splitlines()[-1] if err.strip() else "ffmpeg failed",
                              proc.returncode, err)
        os.replace(tmp, path)
    finally:
        if proc.poll() is None:
            proc.kill()
        tmp.unlink(missing_ok=True)
        if wav:
            wav.unlink(missing_ok=True)


def build_demo_library(out_dir: Path, seed: int = 0, size: int = 128) -> list[Path]:
    """Write (or keep) the sample library under ``out_dir``; return the video paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / "library.json"
    old = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest: dict[str, Any] = {}
    paths = []
    for i, (name, durs, counts, partial) in enumerate(ASSETS):
        base = DEMO_SEED_BASE + 100 * i + 10 * seed
        specs = [(base + j, d, n) for j, (d, n) in enumerate(zip(durs, counts))]
        # First pass for the ground truth only (scenes are cheap; frames are dropped at once),
        # so the long asset is never held in memory as a whole.
        classes, original = [], None
        for j, (sd, d, n) in enumerate(specs):
            sc = _scene(sd, d, n, size)
            classes.append([s.cls for s in sc.sources])
            if partial and j == 0:
                rest = np.zeros(int(round(sum(durs[1:]) * fw.SAMPLE_RATE)), np.float32)
                original = np.concatenate([sc.mixture, rest])
            del sc
        cuts = list(np.cumsum(durs)[:-1].round(6))
        entry = {"seeds": [sd for sd, _, _ in specs], "cuts": [float(c) for c in cuts],
                 "classes": classes, "duration": float(sum(durs)),
                 "original_audio": "first scene" if partial else None, "size": size}
        if partial:
            entry["classes_in_original"] = classes[0]
        path = out_dir / name
        manifest[name] = entry
        paths.append(path)
        if path.exists() and path.stat().st_size > 0 and old.get(name) == entry:
            continue  # already written with the same content

        def stream(specs: list[tuple[int, float, int | None]] = specs) -> Iterator[fw.Scene]:
            for sd, d, n in specs:
                yield _scene(sd, d, n, size)

        _write(path, stream(), size, original)
    tmp = manifest_path.with_name(".library.json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, manifest_path)
    return paths

