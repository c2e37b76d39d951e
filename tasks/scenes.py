"""Shots (PySceneDetect) and model windows.

Detector: AdaptiveDetector (rolling-average content change, threshold 3.0) on frames scaled
the way PySceneDetect's automatic downscale does (to ~256 px wide, bilinear). On FoleyWorld cuts
and ffmpeg lavfi test patterns it found every hard cut to the frame, and measured on an 8-scene
640×360 video it found all 7 cuts where ContentDetector missed one; it is also less prone to split
a shot on fast motion.

Decoding: PyAV in-process, frames handed to the detector directly instead of through
``SceneManager``/``open_video``. That path converted every full-size frame to BGR and then
resized it, which at 720p cost ~3× the decode itself (260 frames/s against ~800 for ffmpeg
decoding to the same size); here the decoder's own planes are resized, frame threads decode
ahead, and H.264's in-loop deblocking is skipped (see ``detect_cuts``). Each frame's position is
its own timestamp (pts × time base, relative to the stream start), so cut times of VFR input
are real times, not frame numbers over an average rate. The same analysis frames feed the
per-frame statistics (tasks/frame_stats.py) from which tasks/transitions.py finds fades and
dissolves and drops the detector's cuts that are flashes: still one decode.

Shots run from boundary to boundary and record how they begin and end (``start`` / ``end``
of the asset, ``cut``, ``fade``, ``dissolve``). Their windows cover the shot's sound span,
which a fade trims (no window over the black) and a dissolve extends to the dissolve's far end.

Windows: shots shorter than ``min_shot_s`` merge into a neighbour (the previous one; the first
into the next). A shot of length L ≤ W (the model window, 8 s) is one window. A longer shot
gets n = ⌈(L − o)/(W − o)⌉ windows of exactly W seconds, evenly spaced:

    start_i = s + i · (L − W)/(n − 1),   i = 0 … n−1

(s and L of the sound span) so the overlap W − (L − W)/(n − 1) is at least o (1 s, crossfaded
at mix time) and the last window ends exactly at the span's end: no sliver, no window longer
than the model's.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from tasks.errors import MediaError
from tasks.frame_stats import FrameSeries, FrameStatsCollector
from tasks.media_paths import display
from tasks.transitions import Boundary, Edge, find_transitions


logging.getLogger("pyscenedetect").setLevel(logging.WARNING)

# PySceneDetect's automatic downscale targets this width (``DEFAULT_MIN_WIDTH``); kept after
# measuring 128/192/256 on 720p (see docs/performance.md, "Media stages").
DETECT_MIN_WIDTH = 256
_MAX_DECODE_FAILURES = 8
_I420_FORMATS = {"yuv420p", "yuvj420p"}


TRANSITION_KINDS = ("start", "end", "cut", "fade", "dissolve", "wipe")


@dataclass(frozen=True)
class Shot:
    """A shot between two boundaries; its sound (and its windows) spans [sound_start_s,
    sound_end_s]: inside the shot after a fade (no window over the black), beyond it by half
    a dissolve (the neighbours' windows overlap there and are crossfaded)."""

    index: int
    start_s: float
    end_s: float
    start_kind: str = "start"
    end_kind: str = "end"
    start_ramp_s: float = 0.0
    end_ramp_s: float = 0.0
    sound_start_s: float | None = None
    sound_end_s: float | None = None

    @property
    def length_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class Window:
    shot_index: int
    window_index: int
    start_s: float
    end_s: float
    shot_start_s: float
    shot_end_s: float
    start_transition: str = "start"
    end_transition: str = "end"
    start_transition_s: float = 0.0
    end_transition_s: float = 0.0

    def to_json(self) -> dict[str, float | int]:
        return asdict(self)


def detection_size(width: int, height: int, min_width: int = DETECT_MIN_WIDTH) -> tuple[int, int]:
    """Analysis size: PySceneDetect's automatic downscale (factor = width / min_width, never up),
    rounded to even sides because the small frame is assembled as I420 (chroma is half size)."""
    factor = max(1.0, max(width, height) / float(min_width))
    return (max(2, int(round(width / factor)) // 2 * 2), max(2, int(round(height / factor)) // 2 * 2))


def _small_bgr(frame: Any, size: tuple[int, int]) -> np.ndarray:
    """The decoded frame at ``size`` as BGR, without ever converting the full-size picture.

    8-bit 4:2:0 frames (nearly all input) are read in place from the decoder's planes and each
    plane is resized on its own (bilinear, as PySceneDetect's own downscale), then the small I420
    image is converted; a full-size yuv→bgr conversion plus a resize cost ~4× more per frame
    at 720p. Other pixel formats go through swscale at the small size.
    """
    w, h = size
    if frame.format.name not in _I420_FORMATS:
        return frame.to_ndarray(format="bgr24", width=w, height=h)
    out = np.empty((h * 3 // 2, w), np.uint8)
    flat = out.reshape(-1)
    offset = 0
    for plane, (pw, ph) in zip(frame.planes, ((w, h), (w // 2, h // 2), (w // 2, h // 2))):
        src = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:plane.height, :plane.width]
        flat[offset:offset + pw * ph] = cv2.resize(src, (pw, ph), interpolation=cv2.INTER_LINEAR).reshape(-1)
        offset += pw * ph
    return cv2.cvtColor(out, cv2.COLOR_YUV2BGR_I420)


@dataclass(frozen=True)
class Scan:
    """One decoding pass: the detector's hard cuts, duration, rate and every frame's statistics."""

    cuts: list[float]
    duration_s: float
    fps: float
    series: FrameSeries


def detect_cuts(path: Path, threshold: float = 3.0, *,
                min_width: int = DETECT_MIN_WIDTH) -> tuple[list[float], float, float]:
    """Cut times (s), the video's duration (s) and frame rate, by PySceneDetect's AdaptiveDetector.

    Frames are decoded in-process by PyAV and fed to the detector directly (see the module
    docstring for why not through ``SceneManager``); each frame's own timestamp is its position,
    so VFR input gets real cut times.
    """
    scan = scan_video(path, threshold, min_width=min_width)
    return scan.cuts, scan.duration_s, scan.fps


def scan_video(path: Path, threshold: float = 3.0, *, min_width: int = DETECT_MIN_WIDTH) -> Scan:
    """The single decoding pass behind :func:`detect_cuts` and :func:`detect_shots`: hard cuts by
    AdaptiveDetector and, from the same analysis frames, the per-frame statistics
    (tasks/frame_stats.py) that tasks/transitions.py reads fades and dissolves from."""
    from scenedetect import AdaptiveDetector
    from scenedetect.common import FrameTimecode, Timecode

    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise MediaError(f"{display(path)}: scene detection cannot open the video ({exc.strerror})",
                         path=str(path), stage="scenes") from exc
    with fh:
        try:
            container = av.open(fh, mode="r", metadata_errors="ignore")
        except (av.error.FFmpegError, ValueError, OSError) as exc:
            raise MediaError(f"{display(path)}: scene detection cannot open the video ({exc})",
                             path=str(path), stage="scenes") from exc
        with container:
            if not container.streams.video:
                raise MediaError(f"{display(path)}: no video stream", path=str(path), stage="scenes")
            v = container.streams.video[0]
            rate = v.guessed_rate or v.average_rate
            if not rate:
                raise MediaError(f"{display(path)}: no frame rate", path=str(path), stage="scenes")
            fps = Fraction(rate.numerator, rate.denominator)
            # Frame threads decode the next frames while this thread analyses the current one;
            # without the in-loop deblocking filter H.264/HEVC decode ~15 % faster, and cut
            # scores (mean HSV change of a 256-px-wide thumbnail) do not notice blocking.
            v.thread_type = "AUTO"
            v.codec_context.options = {"skip_loop_filter": "all"}
            detector = AdaptiveDetector(adaptive_threshold=threshold, min_scene_len=6)
            start = int(v.start_time or 0)
            size: tuple[int, int] | None = None
            cuts: list[Any] = []
            stats = FrameStatsCollector()
            last: Any = None
            failures = 0
            for packet in container.demux(v):
                try:
                    frames = packet.decode()
                    failures = 0
                except av.error.FFmpegError:
                    # A corrupt packet costs its frame, not the asset; a run of them means the
                    # rest of the stream is unreadable (PySceneDetect's own rule, 8 in a row).
                    failures += 1
                    if failures >= _MAX_DECODE_FAILURES:
                        break
                    continue
                for frame in frames:
                    if size is None:
                        size = detection_size(frame.width, frame.height, min_width)
                    tb = frame.time_base or v.time_base
                    if frame.pts is None or not tb:
                        # no timestamp (some AVI/raw streams): the next frame at the nominal rate
                        pos = FrameTimecode(0 if last is None else last.frame_num + 1, fps)
                    else:
                        pos = FrameTimecode(Timecode(pts=int(frame.pts) - start,
                                                     time_base=Fraction(tb.numerator, tb.denominator)), fps)
                    small = _small_bgr(frame, size)
                    cuts += detector.process_frame(pos, small)
                    stats.add(float(pos.seconds), small)
                    last = pos
            if last is not None:
                cuts += detector.post_process(last)
            declared = _declared_duration(container, v, fps)
    if last is None:
        return Scan([], 0.0, float(fps), stats.series())
    times = sorted({round(float(c.seconds), 9) for c in cuts if c.seconds > 0})
    return Scan(times, max(declared, float(last.seconds) + 1.0 / float(fps)), float(fps), stats.series())


def _declared_duration(container: Any, v: Any, fps: Fraction) -> float:
    """The duration the file declares (frame count first, as PySceneDetect's PyAV backend)."""
    if v.frames and v.frames > 0:
        return float(v.frames / fps)
    if container.duration and container.duration > 0:
        return container.duration / 1_000_000
    if v.duration and v.time_base:
        return float(v.duration * v.time_base)
    return 0.0


def shots_from_cuts(cuts: list[float], duration: float, min_shot_s: float = 1.0) -> list[Shot]:
    """Cut times → shots, merging shots shorter than ``min_shot_s`` into a neighbour."""
    return shots_from_boundaries([Boundary(c, "cut", c, 0.0, c, 0.0) for c in cuts], duration,
                                 min_shot_s)


def shots_from_boundaries(bounds: list[Boundary], duration: float, min_shot_s: float = 1.0,
                          head: Edge | None = None, tail: Edge | None = None) -> list[Shot]:
    """Boundaries → shots, merging shots shorter than ``min_shot_s`` into a neighbour (the
    previous one; the first into the next): the boundary between them goes, and with it its
    transition."""
    head = head or Edge(0.0, 0.0, False)
    tail = tail or Edge(duration, 0.0, False)
    inner = sorted((b for b in bounds if 0.0 < b.time_s < duration), key=lambda b: b.time_s)
    # spans as [start, end, boundary before (None: asset start), boundary after (None: end)]
    spans: list[list[Any]] = []
    edges: list[Boundary | None] = [None, *inner, None]
    times = [0.0] + [b.time_s for b in inner] + [duration]
    for k in range(len(times) - 1):
        if times[k + 1] > times[k]:
            spans.append([times[k], times[k + 1], edges[k], edges[k + 1]])
    merged: list[list[Any]] = []
    for span in spans:
        if merged and (span[1] - span[0] < min_shot_s or merged[-1][1] - merged[-1][0] < min_shot_s):
            merged[-1][1] = span[1]
            merged[-1][3] = span[3]
        else:
            merged.append(span)
    out = []
    for i, (a, b, before, after) in enumerate(merged):
        if before is None:
            start_kind = "fade" if head.fade else "start"
            sound_a, ramp_a = head.sound_s, head.ramp_s if head.fade else 0.0
        else:
            start_kind, sound_a, ramp_a = before.kind, before.after_s, before.after_ramp_s
        if after is None:
            end_kind = "fade" if tail.fade else "end"
            sound_b, ramp_b = tail.sound_s, tail.ramp_s if tail.fade else 0.0
        else:
            end_kind, sound_b, ramp_b = after.kind, after.before_s, after.before_ramp_s
        if not sound_b > sound_a:  # nothing visible in between (a degenerate run of flat frames)
            sound_a, sound_b, ramp_a, ramp_b = a, b, 0.0, 0.0
        out.append(Shot(i, a, b, start_kind, end_kind, round(ramp_a, 6), round(ramp_b, 6),
                        round(sound_a, 6), round(sound_b, 6)))
    return out


def detect_shots(path: Path, min_shot_s: float = 1.0) -> list[Shot]:
    """Shots of the video at ``path``: hard cuts, fades and dissolves (tasks/transitions.py),
    all from one decoding pass."""
    scan = scan_video(path)
    if scan.duration_s <= 0:
        raise MediaError(f"{display(path)}: no frames to detect scenes in", path=str(path), stage="scenes")
    tr = find_transitions(scan.series, scan.cuts, scan.duration_s, scan.fps)
    return shots_from_boundaries(tr.boundaries, scan.duration_s, min_shot_s, tr.head, tr.tail)


def plan_windows(shots: list[Shot], window_s: float = 8.0, overlap_s: float = 1.0) -> list[Window]:
    """Model windows over each shot's sound span (see the module docstring for the spacing
    rule); each window carries how its shot begins and ends."""
    if not 0 <= overlap_s < window_s:
        raise ValueError("overlap must be in [0, window)")
    out: list[Window] = []
    for shot in shots:
        lo = shot.start_s if shot.sound_start_s is None else shot.sound_start_s
        hi = shot.end_s if shot.sound_end_s is None else shot.sound_end_s
        how = (shot.start_kind, shot.end_kind, shot.start_ramp_s, shot.end_ramp_s)
        length = hi - lo
        if length <= window_s + 1e-9:
            out.append(Window(shot.index, 0, lo, hi, shot.start_s, shot.end_s, *how))
            continue
        n = math.ceil((length - overlap_s) / (window_s - overlap_s) - 1e-9)
        n = max(n, 2)
        stride = (length - window_s) / (n - 1)
        for i in range(n):
            a = lo + i * stride
            b = hi if i == n - 1 else a + window_s
            out.append(Window(shot.index, i, round(a, 6), round(b, 6), shot.start_s, shot.end_s, *how))
    return out
