"""A library given as an fsspec URI, through the real CLI: files are staged into the data
dir's cache by content, processed like local ones, and recorded under their original URI."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

from tests.flows.conftest import stepfoley


def test_run_over_a_chained_fsspec_uri(tmp_path: Path, tiny_bundle: Path, demo_footage: Path) -> None:
    lib = tmp_path / "remote lib"
    lib.mkdir()
    clip = (demo_footage / "three-shots.mp4").read_bytes()
    (lib / "three-shots.mp4").write_bytes(clip)
    (lib / "notes.mp4").write_bytes(b"not a video at all")
    sha = hashlib.sha256(clip).hexdigest()
    prompts = tmp_path / "prompts.csv"
    with prompts.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["asset", "prompt"])
        w.writerows([[sha, "a dog barks"], [sha, "rain falls"]])
    # simplecache:: makes fsspec treat the directory as a remote store: nothing is read in place.
    uri = f"simplecache::file://{lib.as_posix()}"
    data = tmp_path / "data"
    proc = stepfoley(["--data-dir", str(data), "run", uri, "--bundle", str(tiny_bundle), "--steps", "2",
                      "--tracks", "2", "--prompts", str(prompts)])
    assert proc.returncode == 1, proc.stdout + proc.stderr  # finished, one bad file recorded
    rows = {Path(r["path"]).name: r for r in json.loads(
        stepfoley(["--data-dir", str(data), "status", "--json"]).stdout)}
    good, bad = rows["three-shots.mp4"], rows["notes.mp4"]
    assert good["status"] == "done" and good["sha256"] == sha and good["tracks"] > 0
    assert "://" in good["path"] and Path(good["output"]).is_file()
    assert str(Path(good["output"]).resolve()).startswith(str(data.resolve()))
    assert bad["status"] == "failed" and "notes.mp4" in bad["error"]
    # Rerun: nothing new to stage or generate.
    again = stepfoley(["--data-dir", str(data), "run", uri, "--bundle", str(tiny_bundle), "--steps", "2",
                       "--tracks", "2", "--prompts", str(prompts)])
    assert again.returncode == 1
    rows2 = {Path(r["path"]).name: r for r in json.loads(
        stepfoley(["--data-dir", str(data), "status", "--json"]).stdout)}
    assert rows2["three-shots.mp4"]["output"] == good["output"]
    assert rows2["three-shots.mp4"]["tracks"] == good["tracks"]


def test_unknown_protocol_is_a_one_line_usage_error(tmp_path: Path) -> None:
    proc = stepfoley(["--data-dir", str(tmp_path), "run", "nosuchproto://x/y"])
    assert proc.returncode == 2
    assert len([ln for ln in proc.stderr.splitlines() if ln.strip()]) == 1
