"""Guidance-branch training data from real footage: sources, per-clip checks, features.

A source is a folder or fsspec URI of videos with sound (discovered as the pipeline discovers a
library), or a CSV/TSV listing. Listings have a header naming ``path`` (or ``file``/``video``),
optional ``start`` and ``duration`` seconds and an optional ``label``; relative paths resolve
against the listing's folder. VGGSound's own headerless CSV (``youtube_id, start_seconds,
label, split``) is read too, with files named ``<youtube_id>_<start:06d>.mp4`` (its 10-s clips
as commonly stored, each starting at 0 in its file) beside the listing or under ``video_dir``.

Per clip (``clip_features``): no audio stream, a span too short for two segments, a silent
soundtrack (< −60 dBFS) or an unreadable file is a ``Skip`` with its reason, counted by the
caller; nothing raises for one bad file. Otherwise every segment of the clip
(models/training/guidance_pairs.py) is encoded with the bundle's own components, exactly as
generation encodes them: the audio to the network-normalised latent (``pipe.encode_audio``: the
VAE posterior mean for MMAudio, the log-mel for the demo codec) and the segment's frames to the
network's clip and sync features (``pipe.encode_video``).
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from models.training.guidance_pairs import plan_segments
from tasks.audio import SILENCE_DBFS, decode_audio, level_dbfs
from tasks.errors import MediaError
from tasks.ffmpeg_bin import FFmpegError
from tasks.frames import read_frames
from tasks.ingest import DiscoveredFile, discover
from tasks.probe import probe

LISTING_SUFFIXES = (".csv", ".tsv")


@dataclass(frozen=True)
class ClipRef:
    """One clip of a source: a local path and the span of it to use."""

    key: str
    path: str
    start_s: float = 0.0
    duration_s: float | None = None
    label: str = ""


@dataclass(frozen=True)
class Skip:
    key: str
    reason: str  # "no audio stream" | "too short" | "silent" | "unreadable"
    detail: str = ""


def _key(path: str, start_s: float) -> str:
    """A stable clip key (safetensors names): the file name plus a hash of path and start."""
    digest = hashlib.sha256(f"{path}\0{start_s:.3f}".encode()).hexdigest()[:10]
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in Path(path).stem)[:40]
    return f"{stem}-{digest}"


def list_source(source: str, cache_dir: Path, video_dir: str | None = None) -> tuple[list[ClipRef], list[Skip]]:
    """The clips of a folder / URI / listing, in a stable order, and what could not be listed."""
    if str(source).lower().endswith(LISTING_SUFFIXES) and Path(source).is_file():
        return _read_listing(Path(source), video_dir), []
    clips, skips = [], []
    for item in discover(source, cache_dir):
        if isinstance(item, MediaError):
            skips.append(Skip(str(getattr(item, "path", "?")), "unreadable", str(item)))
        elif isinstance(item, DiscoveredFile):
            clips.append(ClipRef(_key(str(item.uri or item.path), 0.0), str(item.path)))
    return clips, skips


def _read_listing(path: Path, video_dir: str | None) -> list[ClipRef]:
    text = path.read_text(encoding="utf-8-sig")
    dialect = "excel-tab" if path.suffix.lower() == ".tsv" else "excel"
    rows = [r for r in csv.reader(text.splitlines(), dialect=dialect) if r and any(c.strip() for c in r)]
    if not rows:
        return []
    base = Path(video_dir) if video_dir else path.parent
    head = [c.strip().lower() for c in rows[0]]
    out: list[ClipRef] = []
    if any(h in head for h in ("path", "file", "video")):
        col = {h: i for i, h in enumerate(head)}
        pcol = next(col[h] for h in ("path", "file", "video") if h in col)
        for r in rows[1:]:
            p = Path(r[pcol].strip())
            p = p if p.is_absolute() else base / p
            start = float(r[col["start"]]) if "start" in col and r[col["start"]].strip() else 0.0
            dur = float(r[col["duration"]]) if "duration" in col and r[col["duration"]].strip() else None
            label = r[col["label"]].strip() if "label" in col else ""
            out.append(ClipRef(_key(str(p), start), str(p), start, dur, label))
        return out
    for r in rows:  # VGGSound: youtube_id, start_seconds, label, split
        ytid, start = r[0].strip(), int(float(r[1]))
        p = base / f"{ytid}_{start:06d}.mp4"
        out.append(ClipRef(_key(str(p), 0.0), str(p), 0.0, None, r[2].strip() if len(r) > 2 else ""))
    return out


def clip_features(pipe: Any, ref: ClipRef, segment_s: float) -> dict[str, torch.Tensor] | Skip:
    """Latents and conditioning features of every segment of one clip, or why it is skipped."""
    try:
        info = probe(Path(ref.path))
    except (MediaError, OSError) as exc:
        return Skip(ref.key, "unreadable", str(exc))
    if not info.has_audio:
        return Skip(ref.key, "no audio stream")
    end = info.duration_s if ref.duration_s is None else min(info.duration_s, ref.start_s + ref.duration_s)
    segments = plan_segments(ref.start_s, end, segment_s)
    if len(segments) < 2:
        return Skip(ref.key, "too short", f"{end - ref.start_s:.2f} s < 2 × {segment_s} s")
    sr = int(pipe.codec.sample_rate)
    try:
        audio = decode_audio(ref.path, segments[0].start_s, segments[-1].end_s, sr)
    except (FFmpegError, MediaError) as exc:
        return Skip(ref.key, "unreadable", str(exc))
    if audio.size == 0 or level_dbfs(audio) < SILENCE_DBFS:
        return Skip(ref.key, "silent")
    specs = pipe.video_features.frame_specs()
    lat, clip, sync = [], [], []
    try:
        for seg in segments:
            a = int(round((seg.start_s - segments[0].start_s) * sr))
            wave = audio[a: a + int(round(segment_s * sr))]
            lat.append(pipe.encode_audio(np.asarray(wave, np.float32), segment_s)[0])
            video = {k: read_frames(ref.path, seg.start_s, seg.end_s, spec) for k, spec in specs.items()}
            c, s = pipe.encode_video(video, segment_s)
            clip.append(c[0])
            sync.append(s[0])
    except (FFmpegError, MediaError) as exc:
        return Skip(ref.key, "unreadable", str(exc))
    return {"latent": torch.stack(lat).float(), "clip": torch.stack(clip).float(),
            "sync": torch.stack(sync).float()}


def listing_sha256(clips: list[ClipRef]) -> str:
    """The hash of what was listed (paths, spans): part of the branch's training provenance."""
    h = hashlib.sha256()
    for c in clips:
        h.update(f"{c.path}\0{c.start_s}\0{c.duration_s}\0{c.label}\n".encode())
    return h.hexdigest()


def iter_shards(clips: list[ClipRef], shard_size: int) -> Iterator[tuple[int, list[ClipRef]]]:
    for i in range(0, len(clips), shard_size):
        yield i // shard_size, clips[i: i + shard_size]
