"""`stepfoley parity DIR`: the repo's fixtures pass; fixtures of other sizes are found by their JSON
content and recomputed; a reference nudged past the tolerance makes it exit 1."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from flows.cli import main
from models.generation.mmaudio import MMAudio
from tests.models.helpers import randomize, single_thread  # noqa: F401  (autouse)

ROOT = Path(__file__).resolve().parents[1] / "fixtures"
FAMILY = ROOT / "mmaudio-family"


def _copy(stems: list[str], src: Path, dst: Path) -> None:
    for stem in stems:
        for f in src.glob(f"{stem}*"):
            shutil.copy(f, dst / f.name)


def _lines(out: str) -> dict[tuple[str, str], str]:
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[2].startswith("max_abs_err="):
            rows[(parts[0], parts[1])] = parts[-1]
    return rows


def _network_fixture(d: Path, name: str) -> None:
    """A network fixture of other sizes (batch 1, 3 s lengths, v1 layout) in the official layout."""
    cfg = dict(latent_dim=8, clip_dim=12, sync_dim=16, text_dim=10, hidden_dim=32, depth=3, fused_depth=1,
               num_heads=2, latent_seq_len=94, clip_seq_len=24, sync_seq_len=72, text_seq_len=9, v2=False)
    net = randomize(MMAudio(**cfg), 11, gain=0.8).eval()
    g = torch.Generator().manual_seed(3)
    io = {"latent": torch.randn(1, 94, 8, generator=g), "clip_f": torch.randn(1, 24, 12, generator=g),
          "sync_f": torch.randn(1, 72, 16, generator=g), "text_f": torch.randn(1, 9, 10, generator=g),
          "t": torch.tensor([0.3])}
    with torch.no_grad():
        io["flow"] = net(io["latent"], io["clip_f"], io["sync_f"], io["text_f"], io["t"]).contiguous()
    sd = dict(net.state_dict(), latent_rot=torch.zeros(1))  # derived keys, as official files carry
    save_file(sd, str(d / f"{name}.safetensors"))
    save_file(io, str(d / f"{name}_io.safetensors"))
    (d / f"{name}.json").write_text(json.dumps(cfg))


def test_repo_fixtures_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The network fixture as the repo stores it (sharded), and the cheap family fixtures.
    _copy(["mmaudio_tiny_v2"], ROOT / "mmaudio", tmp_path)
    _copy(["clip_tiny", "mel_converter_16k", "bigvgan_v2_44k_tiny", "video_", "sequence_lengths",
           "mmaudio_features_state_dict_manifest"], FAMILY, tmp_path)
    assert main(["parity", str(tmp_path)]) == 0
    rows = _lines(capsys.readouterr().out)
    assert rows[("mmaudio_tiny_v2", "x1_negative_text")] == "ok"
    assert rows[("clip_tiny", "text_tokens")] == "ok"
    assert rows[("video_preprocess", "frame_selection_rows_mismatched")] == "ok"
    assert {k[0] for k in rows} == {"mmaudio_tiny_v2", "clip_tiny", "mel_converter_16k", "bigvgan_v2_44k_tiny",
                                    "video_preprocess", "sequence_lengths"}


def test_other_sizes_and_failures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _network_fixture(tmp_path, "net_other")
    _copy(["clip_tiny"], FAMILY, tmp_path)
    for f in tmp_path.glob("clip_tiny*"):  # a name that says nothing: the JSON decides
        f.rename(tmp_path / f.name.replace("clip_tiny", "towers"))
    (tmp_path / "notes.json").write_text(json.dumps({"about": "not a fixture"}))
    assert main(["parity", str(tmp_path)]) == 0
    rows = _lines(capsys.readouterr().out)
    assert rows[("net_other", "flow")] == "ok" and ("clip_tiny", "clip_features") in rows

    io_path = tmp_path / "net_other_io.safetensors"
    io = load_file(str(io_path))
    io["flow"] = io["flow"] + 2e-4  # just over the tolerance
    save_file(io, str(io_path))
    assert main(["parity", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert _lines(out)[("net_other", "flow")] == "FAIL" and "max_abs_err=2.0" in out

    io_path = tmp_path / "towers_io.safetensors"
    io = load_file(str(io_path))
    io["text_tokens"][1, 2] += 1  # token ids are exact
    save_file(io, str(io_path))
    main(["parity", str(tmp_path)])
    assert _lines(capsys.readouterr().out)[("clip_tiny", "text_tokens")] == "FAIL"


def test_empty_directory_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parity", str(tmp_path)]) == 2
    assert "no parity fixture" in capsys.readouterr().err
