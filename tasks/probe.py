"""In-process probing with PyAV (FFmpeg's libraries), never by scraping ffmpeg's text output.

Facts: container, duration, frame rate (average and whether it varies: the spread of packet
durations over the first ≤ 600 video packets, VFR when max/min > 1.05 after dropping
zero/unknown durations), size, rotation (the display matrix of the first decoded frame),
codec, audio streams. The first video frame must decode: a file with a video stream and no
decodable frame is bad input. Files are opened through a Python file object so any file
name (quotes, newlines, non-UTF-8 bytes) works.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import av

from tasks.errors import MediaError
from tasks.media_paths import display

MAX_PIXELS = 8192 * 8192  # beyond 8K×8K the decoder would need gigabytes per frame
MIN_DURATION_S = 0.2


@dataclass
class AudioStreamInfo:
    index: int
    codec: str
    sample_rate: int
    channels: int
    duration_s: float | None


@dataclass
class ProbeResult:
    path: str
    size_bytes: int
    container: str
    duration_s: float
    fps: float
    vfr: bool
    width: int
    height: int
    rotation: int
    video_codec: str
    video_packets: int | None
    audio: list[AudioStreamInfo] = field(default_factory=list)

    @property
    def has_audio(self) -> bool:
        return bool(self.audio)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _fail(path: Path, reason: str) -> MediaError:
    return MediaError(f"{display(path)}: {reason}", path=str(path), stage="probe")


def probe(path: Path) -> ProbeResult:
    """Probe one file; raise :class:`MediaError` with a one-line reason when it is not usable."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise _fail(path, f"cannot read ({exc.strerror or exc})") from exc
    if not path.is_file():
        raise _fail(path, "not a regular file")
    if size == 0:
        raise _fail(path, "empty file (0 bytes)")
    try:
        with open(path, "rb") as fh, av.open(fh, mode="r", metadata_errors="ignore") as c:
            return _facts(path, size, c)
    except MediaError:
        raise
    except (av.error.FFmpegError, ValueError, OSError, IndexError, StopIteration) as exc:
        msg = re.sub(r"\[Errno -?\d+\] ", "", " ".join(str(exc).split()))
        msg = re.sub(r": '.*'$", "", msg) or type(exc).__name__
        raise _fail(path, f"not a readable video ({msg})") from exc


def _facts(path: Path, size: int, c: Any) -> ProbeResult:
    if not c.streams.video:
        kind = "audio-only file" if c.streams.audio else "no video stream"
        raise _fail(path, kind)
    v = c.streams.video[0]
    w, h = int(v.codec_context.width or 0), int(v.codec_context.height or 0)
    if w <= 0 or h <= 0:
        # FFmpeg leaves the size unset when it is missing or beyond its own image-size limit
        # (w·h ≥ INT_MAX/8, e.g. a declared 20000x20000)
        raise _fail(path, "video stream declares no usable frame size (missing or too large)")
    if w * h > MAX_PIXELS:
        raise _fail(path, f"resolution {w}x{h} is larger than the supported 8192x8192")
    duration = None
    if c.duration:
        duration = c.duration / 1_000_000
    elif v.duration and v.time_base:
        duration = float(v.duration * v.time_base)
    durations, packets = [], 0
    for pkt in c.demux(v):
        if pkt.size == 0:
            continue
        packets += 1
        if pkt.duration and len(durations) < 600:
            durations.append(int(pkt.duration))
        if packets >= 600:
            break
    vfr = bool(durations) and max(durations) > 1.05 * min(durations)
    c.seek(0)
    rotation = 0
    try:
        frame = next(c.decode(video=0))
        rotation = int(getattr(frame, "rotation", 0) or 0)
    except (StopIteration, av.error.FFmpegError) as exc:
        raise _fail(path, "video stream has no decodable frames") from exc
    rate = v.average_rate or v.guessed_rate or v.base_rate
    fps = float(rate) if rate else 0.0
    if not duration or duration <= 0:
        raise _fail(path, "zero-length video")
    if duration < MIN_DURATION_S:
        raise _fail(path, f"too short ({duration:.2f} s; at least {MIN_DURATION_S} s needed)")
    audio = [AudioStreamInfo(a.index, a.codec_context.name, int(a.codec_context.sample_rate or 0),
                             int(a.codec_context.channels or 0),
                             float(a.duration * a.time_base) if a.duration and a.time_base else None)
             for a in c.streams.audio]
    return ProbeResult(str(path), size, c.format.name, float(duration), fps, vfr, w, h,
                       rotation % 360, v.codec_context.name, v.frames or None, audio)
