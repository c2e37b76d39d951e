"""End to end with an MMAudio-family bundle: a tiny official-format release is converted by the
CLI and `stepfoley run` produces a muxed output with it (independent mode: the converted bundle
has no guidance branch); `--mode nag` on that bundle is refused up front."""

from __future__ import annotations

import csv
import hashlib
import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from flows.cli import main
from models.generation.bundle import bundle_identity, file_sha256
from tasks.ffmpeg_bin import ffmpeg_path
from tests.flows.conftest import stepfoley
from tests.models.mmaudio_family.release_helpers import build_tiny_release


@pytest.fixture(scope="module")
def mmaudio_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("release")
    sizes = build_tiny_release(root)
    out = tmp_path_factory.mktemp("bundles") / "mmaudio-small16k-tiny"
    assert main(["convert-mmaudio", "--from", str(root), "--variant", "small_16k", "--config", str(sizes),
                 "--out", str(out)]) == 0
    return out


def _clip(path: Path, seconds: float = 2.5) -> None:
    subprocess.run([ffmpeg_path(), "-nostdin", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", f"testsrc2=size=96x64:rate=25:duration={seconds}",
                    "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=16000:duration={seconds}",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path)], check=True)


def _video_md5(path: Path) -> str:
    return subprocess.run([ffmpeg_path(), "-nostdin", "-loglevel", "error", "-i", str(path), "-map", "0:v:0",
                           "-c", "copy", "-f", "md5", "-"], capture_output=True, text=True, check=True).stdout.strip()


def _library(tmp_path: Path) -> tuple[Path, Path]:
    lib = tmp_path / "lib"
    lib.mkdir()
    _clip(lib / "street.mp4")
    sha = hashlib.sha256((lib / "street.mp4").read_bytes()).hexdigest()
    prompts = tmp_path / "prompts.csv"
    with prompts.open("w", newline="") as fh:
        csv.writer(fh).writerows([["asset", "prompt"], [sha, "a bicycle bell rings"]])
    return lib, prompts


def test_run_with_converted_release(tmp_path: Path, mmaudio_bundle: Path) -> None:
    lib, prompts = _library(tmp_path)
    data = tmp_path / "data"
    proc = stepfoley(["--data-dir", str(data), "run", str(lib), "--bundle", str(mmaudio_bundle),
                      "--mode", "independent", "--steps", "2", "--tracks", "1", "--prompts", str(prompts),
                      "--prompts-mode", "replace"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (row,) = json.loads(stepfoley(["--data-dir", str(data), "status", "--json"]).stdout)
    assert row["status"] == "done" and row["tracks"] >= 1
    output = Path(row["output"])
    assert output.is_file() and _video_md5(output) == _video_md5(lib / "street.mp4")  # picture copied
    ident = bundle_identity(mmaudio_bundle)
    with sqlite3.connect(data / "stepfoley.db") as db:
        tracks = db.execute("select bundle_id, weights_sha256, stem_uri, prompt_text from track").fetchall()
    assert tracks and {t[:2] for t in tracks} == {(ident["bundle_id"], ident["weights_sha256"])}
    # ... and the bundle's row names every weight file with its sha256 (issue #20 §3)
    with sqlite3.connect(data / "stepfoley.db") as db:
        (bundle_row,) = db.execute("select bundle_id, weights_sha256, files, path from model_bundle").fetchall()
    files = json.loads(bundle_row[2])
    weight_files = sorted(p for p in mmaudio_bundle.rglob("*.safetensors"))
    # the network, the codec (VAE + vocoder), the video features (CLIP + Synchformer), the text tower
    assert {p.relative_to(mmaudio_bundle).parts[0] for p in weight_files} >= {"transformer", "codec", "video_features"}
    assert {p.relative_to(mmaudio_bundle).as_posix(): file_sha256(p) for p in weight_files}.items() <= files.items()
    assert bundle_row[:2] == (ident["bundle_id"], ident["weights_sha256"]) and bundle_row[3] == str(mmaudio_bundle.resolve())
    import soundfile as sf

    info = sf.info(tracks[0][2])
    assert info.samplerate == 16000 and abs(info.duration - 2.5) < 0.05  # the bundle's rate, whole clip
    assert tracks[0][3] == "a bicycle bell rings"


def test_nag_on_a_bundle_without_guidance_branch_is_refused(tmp_path: Path, mmaudio_bundle: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    lib, prompts = _library(tmp_path)
    code = main(["--data-dir", str(tmp_path / "data"), "run", str(lib), "--bundle", str(mmaudio_bundle),
                 "--mode", "nag", "--steps", "2", "--tracks", "1", "--prompts", str(prompts)])
    assert code == 2  # before any run starts: nothing recorded, nothing generated
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "no guidance branch" in lines[0] and "--mode independent" in lines[0]
    assert not (tmp_path / "data" / "stems").exists() or not any((tmp_path / "data" / "stems").iterdir())
