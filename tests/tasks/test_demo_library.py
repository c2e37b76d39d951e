"""The demo library: five real video files with the promised shapes, written idempotently."""

from __future__ import annotations

import json
from pathlib import Path

import av

from tasks.demo_library import build_demo_library


def test_demo_library_written_probed_and_idempotent(tmp_path: Path) -> None:
    paths = build_demo_library(tmp_path, seed=0, size=64)
    assert len(paths) == 5 and all(p.exists() for p in paths)
    manifest = json.loads((tmp_path / "library.json").read_text())
    durations, with_audio = {}, []
    for p in paths:
        with av.open(str(p)) as c:
            v = c.streams.video[0]
            assert v.codec_context.name == "h264"
            durations[p.name] = float(c.duration) / 1e6
            if c.streams.audio:
                with_audio.append(p.name)
        entry = manifest[p.name]
        assert entry["classes"] and all(entry["classes"])
    assert max(durations.values()) > 30.0
    assert sum(1 for e in manifest.values() if e["cuts"]) >= 2
    assert with_audio == [n for n, e in manifest.items() if e["original_audio"]] and len(with_audio) == 1
    mtimes = {p: p.stat().st_mtime_ns for p in paths}
    assert build_demo_library(tmp_path, seed=0, size=64) == paths
    assert {p: p.stat().st_mtime_ns for p in paths} == mtimes  # nothing rewritten
