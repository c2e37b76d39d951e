"""Recompute the MMAudio feature-side fixtures (video / text side) from any directory.

Each function reads ``<name>.json`` (constructor arguments, prompts), ``<name>.safetensors`` (state
dict under official keys) and ``<name>_io.safetensors`` (inputs and reference outputs) as written
by the fixture generator (see the fixtures' README), rebuilds our component from them and returns
``{output: max abs error}``. Integer outputs (token ids, uint8 frames, lengths, frame indices)
report the largest difference in their own unit (ids / levels / count of mismatching rows).
Nothing about the fixtures' sizes is hard-coded: shapes come from the JSON and the io tensors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import torch

from models.mmaudio_family.clip import OpenClip
from models.mmaudio_family.lengths import sequence_lengths
from models.mmaudio_family.synchformer import Synchformer
from models.mmaudio_family.tokenizer import ClipTokenizer
from models.mmaudio_family.video_preprocess import (
    CLIP_SIZE,
    clip_frames_u8,
    select_frames,
    sync_frames_u8,
    u8_to_unit,
)

# Official MotionFormer config fields → our constructor arguments.
_VIT_FIELDS = {"EMBED_DIM": "embed_dim", "DEPTH": "depth", "NUM_HEADS": "num_heads", "MLP_RATIO": "mlp_ratio",
               "QKV_BIAS": "qkv_bias", "PATCH_SIZE": "patch_size", "PATCH_SIZE_TEMP": "temporal_patch_size",
               "TRAIN_CROP_SIZE": "image_size"}


def _load(directory: Path, name: str) -> tuple[dict, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    from safetensors.torch import load_file

    meta = json.loads((directory / f"{name}.json").read_text())
    sd = load_file(str(directory / f"{name}.safetensors"))
    io = load_file(str(directory / f"{name}_io.safetensors"))
    return meta, sd, io


def _err(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.shape != b.shape:
        raise ValueError(f"shape {tuple(a.shape)} != reference {tuple(b.shape)}")
    return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0


def _upscale(base_u8: torch.Tensor, size: int) -> torch.Tensor:
    """The fixtures' test video: each pixel of the small base repeated to reach ``size``, in [0, 1]."""
    f_h, f_w = size // base_u8.shape[-2], size // base_u8.shape[-1]
    return base_u8.repeat_interleave(f_w, -1).repeat_interleave(f_h, -2).float() / 255


def synchformer_config(constructor: dict) -> dict:
    """Our ``Synchformer`` kwargs from a fixture's ``constructor`` (official VIT fields)."""
    vit = {**constructor.get("kept", {}), **constructor.get("VIT_overrides", {})}
    cfg = {_VIT_FIELDS[k]: v for k, v in vit.items() if k in _VIT_FIELDS}
    if "TEMPORAL_RESOLUTION" in vit:
        cfg["segment_frames"] = vit["TEMPORAL_RESOLUTION"] * vit.get("PATCH_SIZE_TEMP", 2)
    return cfg


@torch.no_grad()
def synchformer_parity(directory: str | Path, name: str = "synchformer_tiny") -> dict[str, float]:
    meta, sd, io = _load(Path(directory), name)
    model = Synchformer.from_official(sd, synchformer_config(meta["constructor"]))
    video = _upscale(io["video_base_u8"], model.config.image_size)
    video = (video - 0.5) / 0.5
    segments = model.segment(video)
    return {
        "sync_features": _err(model.encode(video), io["sync_features"]),
        "synchformer_segments_out": _err(model(segments), io["synchformer_segments_out"]),
        "vit_tokens": _err(model.vfeat_extractor.forward_features(segments.flatten(0, 1).transpose(1, 2)),
                           io["vit_tokens"]),
    }


@torch.no_grad()
def clip_parity(directory: str | Path, name: str = "clip_tiny") -> dict[str, float]:
    meta, sd, io = _load(Path(directory), name)
    model = OpenClip.from_official(sd, meta["constructor"])
    context = int(meta["constructor"].get("text_cfg", {}).get("context_length", 77))
    tokens = ClipTokenizer(context_length=context)(meta["prompts"])
    video = _upscale(io["video_base_u8"], CLIP_SIZE)
    return {
        "text_tokens": _err(tokens, io["text_tokens"]),
        "clip_features": _err(model.encode_video(video), io["clip_features"]),
        "clip_features_batch1": _err(model.encode_video(video, batch_size=1), io["clip_features_batch1"]),
        "text_features": _err(model.encode_text(io["text_tokens"]), io["text_features"]),
        "text_features_from_our_tokens": _err(model.encode_text(tokens), io["text_features"]),
    }


def video_preprocess_parity(directory: str | Path) -> dict[str, float]:
    """Pixel transforms (uint8 level difference and float difference) and frame-picking rows."""
    from safetensors.torch import load_file

    d = Path(directory)
    out: dict[str, float] = {}
    clip = load_file(str(d / "video_clip_preprocess_io.safetensors"))
    ours = clip_frames_u8(clip["clip_source_u8"], clip["clip_frames_u8"].shape[-1])
    out["clip_frames_u8"] = _err(ours, clip["clip_frames_u8"])
    out["clip_frames"] = _err(u8_to_unit(ours), u8_to_unit(clip["clip_frames_u8"]))
    sync = load_file(str(d / "video_sync_preprocess_io.safetensors"))
    ref = sync["sync_frames_u8"]
    ours = sync_frames_u8(sync["sync_source_u8"], ref.shape[-1])[: ref.shape[0]]  # load_video keeps int(25 d)
    out["sync_frames_u8"] = _err(ours, ref)
    out["sync_frames"] = _err((u8_to_unit(ours) - 0.5) / 0.5, (u8_to_unit(ref) - 0.5) / 0.5)

    rows = json.loads((d / "video_preprocess.json").read_text())["frame_selection"]["rows"]
    out["frame_selection_rows_mismatched"] = float(frame_selection_mismatches(rows))
    return out


def frame_selection_mismatches(rows: list[dict]) -> int:
    """How many of a fixture's frame-selection rows ``select_frames`` does not reproduce
    (picked clip and sync source frames, returned duration)."""
    bad, times = 0, None
    for row in rows:
        if isinstance(row["source_frame_times"], list):  # later rows of one source say "as above"
            times = row["source_frame_times"]
        sel = select_frames(times, row["duration_sec_requested"])
        if (sel.clip_indices != row["clip_source_indices"] or sel.sync_indices != row["sync_source_indices"]
                or abs(sel.duration - row["duration_sec_returned"]) > 1e-9):
            bad += 1
    return bad


def lengths_parity(directory: str | Path) -> dict[str, float]:
    """Count of (mode, duration, field) entries of ``sequence_lengths.json`` we get wrong."""
    table = json.loads((Path(directory) / "sequence_lengths.json").read_text())
    bad = 0
    for mode in ("16k", "44k"):
        for row in table.get(mode, []):
            ours = sequence_lengths(row["duration"], mode).to_dict()
            bad += sum(ours[k] != v for k, v in row.items() if k != "duration")
    return {"sequence_lengths_mismatched": float(bad)}


PARITY_CHECKS: dict[str, Callable[[Path], dict[str, float]]] = {
    "synchformer_tiny": synchformer_parity,
    "clip_tiny": clip_parity,
    "video_preprocess": video_preprocess_parity,
    "sequence_lengths": lengths_parity,
}

# The file whose presence means a check applies to a directory.
_MARKERS = {"synchformer_tiny": "synchformer_tiny.json", "clip_tiny": "clip_tiny.json",
            "video_preprocess": "video_preprocess.json", "sequence_lengths": "sequence_lengths.json"}


def vision_parity(directory: str | Path) -> dict[str, dict[str, float]]:
    """Run every check whose fixture is present in ``directory``: ``{fixture: {output: error}}``."""
    d = Path(directory)
    return {name: check(d) for name, check in PARITY_CHECKS.items() if (d / _MARKERS[name]).exists()}
