"""Every parity fixture of a directory, recognised by what its JSON says, recomputed with our code.

For each ``*.json`` of the directory the kind is read from its content, never from its file name:

    network           the official MMAudio constructor fields (latent_dim, hidden_dim, depth, …)
    mel / vae / bigvgan / bigvgan_v2 / autoencoder
                      the official source file recorded under ``source.file`` (``parity_audio``)
    synchformer       ``source.file`` names mmaudio/ext/synchformer
    clip              an open_clip ``CLIP`` (``source.model.package``) with prompts
    video_preprocess  ``frame_selection`` rows and ``pixel_io`` files
    sequence_lengths  ``source.file`` = mmaudio/model/sequence_config.py (per-mode duration rows)

JSONs of no known kind (state-dict manifests, unrelated files) are skipped. Each recognised
fixture yields rows (fixture, output, max abs error, tolerance, ok):

    tolerance = 0       integer outputs: token ids, uint8 frames, counts of mismatching rows
              = 1e-5 · max|ref| (≥ 1e-4)  decoded mels (magnitudes up to ~18, fixture README)
              = 1e-4    every other float output

All sizes, seeds, prompts and lengths come from the fixture's own JSON and io tensors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file

from models.mmaudio_family import parity_audio, parity_network, parity_vision
from models.mmaudio_family.lengths import sequence_lengths
from models.mmaudio_family.video_preprocess import clip_frames_u8, sync_frames_u8, u8_to_unit

ABS_TOL = 1e-4
EXACT_SUFFIXES = ("_u8", "_mismatched", "text_tokens")


@dataclass(frozen=True)
class ParityRow:
    fixture: str
    kind: str
    output: str
    max_abs_error: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.max_abs_error <= self.tolerance

    def line(self) -> str:
        verdict = "ok" if self.ok else "FAIL"
        return (f"{self.fixture:<28} {self.output:<36} max_abs_err={self.max_abs_error:.3e} "
                f"tol={self.tolerance:.0e} {verdict}")


def _source_file(meta: dict[str, Any]) -> str:
    src = meta.get("source")
    return str(src.get("file", "")) if isinstance(src, dict) else ""


def fixture_kind(meta: Any) -> str | None:
    """Which kind of fixture a parsed JSON describes (module docstring), or None."""
    if not isinstance(meta, dict):
        return None
    if parity_network.is_network_fixture(meta):
        return "network"
    audio = parity_audio.component_kind(meta)
    if audio is not None:
        return audio
    src = _source_file(meta)
    if "frame_selection" in meta and "pixel_io" in meta:
        return "video_preprocess"
    if "sequence_config" in src and any(isinstance(meta.get(m), list) for m in ("16k", "44k")):
        return "sequence_lengths"
    if "synchformer" in src and "constructor" in meta:
        return "synchformer"
    model = meta.get("source", {}).get("model", {}) if isinstance(meta.get("source"), dict) else {}
    if isinstance(model, dict) and "open_clip" in str(model.get("package", "")) and "prompts" in meta:
        return "clip"
    return None


def _err(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.shape != b.shape:
        raise ValueError(f"shape {tuple(a.shape)} != reference {tuple(b.shape)}")
    return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0


def video_preprocess_parity(json_path: Path) -> dict[str, float]:
    """Pixel transforms (the io files named in ``pixel_io``) and the frame-picking rows."""
    meta = json.loads(json_path.read_text())
    out: dict[str, float] = {}
    for io_name in meta["pixel_io"]:
        io_path = json_path.with_name(io_name)
        if not io_name.endswith(".safetensors") or not io_path.is_file():
            continue
        io = load_file(str(io_path))
        if "clip_source_u8" in io:
            ref = io["clip_frames_u8"]
            ours = clip_frames_u8(io["clip_source_u8"], ref.shape[-1])[: ref.shape[0]]
            out["clip_frames_u8"] = _err(ours, ref)
            out["clip_frames"] = _err(u8_to_unit(ours), u8_to_unit(ref))
        if "sync_source_u8" in io:
            ref = io["sync_frames_u8"]
            ours = sync_frames_u8(io["sync_source_u8"], ref.shape[-1])[: ref.shape[0]]  # load_video keeps int(25 d)
            out["sync_frames_u8"] = _err(ours, ref)
            out["sync_frames"] = _err((u8_to_unit(ours) - 0.5) / 0.5, (u8_to_unit(ref) - 0.5) / 0.5)
    out["frame_selection_rows_mismatched"] = float(
        parity_vision.frame_selection_mismatches(meta["frame_selection"]["rows"]))
    return out


def lengths_parity(json_path: Path) -> dict[str, float]:
    table = json.loads(json_path.read_text())
    bad = 0
    for mode in ("16k", "44k"):
        for row in table.get(mode, []) or []:
            ours = sequence_lengths(row["duration"], mode).to_dict()
            bad += sum(ours[k] != v for k, v in row.items() if k != "duration")
    return {"sequence_lengths_mismatched": float(bad)}


def _audio(json_path: Path) -> list[tuple[str, float, float]]:
    return [(r["output"], r["max_abs_error"], r["tolerance"]) for r in parity_audio.parity_rows(json_path)]


CHECKS: dict[str, Callable[[Path], dict[str, float]]] = {
    "network": parity_network.parity,
    "synchformer": lambda p: parity_vision.synchformer_parity(p.parent, p.stem),
    "clip": lambda p: parity_vision.clip_parity(p.parent, p.stem),
    "video_preprocess": video_preprocess_parity,
    "sequence_lengths": lengths_parity,
}


def tolerance(output: str) -> float:
    return 0.0 if output.endswith(EXACT_SUFFIXES) else ABS_TOL


def find_fixtures(directory: str | Path) -> list[tuple[Path, str]]:
    """(json path, kind) of every recognised fixture in ``directory`` (sorted by name)."""
    found = []
    for path in sorted(Path(directory).glob("*.json")):
        try:
            meta = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, OSError):
            continue
        kind = fixture_kind(meta)
        if kind is not None:
            found.append((path, kind))
    return found


def fixture_rows(json_path: str | Path, kind: str) -> list[ParityRow]:
    path = Path(json_path)
    label = str(json.loads(path.read_text()).get("component", path.stem)) if kind != "network" else path.stem
    if kind in CHECKS:
        errs = [(k, v, tolerance(k)) for k, v in CHECKS[kind](path).items()]
    else:
        errs = _audio(path)
    return [ParityRow(label, kind, out, float(err), float(tol)) for out, err, tol in errs]


def run_parity(directory: str | Path) -> list[ParityRow]:
    """Rows for every fixture of ``directory`` (see module docstring)."""
    rows: list[ParityRow] = []
    for path, kind in find_fixtures(directory):
        rows.extend(fixture_rows(path, kind))
    return rows
