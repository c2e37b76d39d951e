"""Mux: the output video with the picture stream copied bit-exact and the new sound added.

Streams, in order: the picture (``-c:v copy``, never re-encoded), the mix (first audio stream,
default disposition), the original soundtrack if there was one, then one stream per track
("stem"), each titled with its prompt(s). MKV (default) carries everything as FLAC; MP4/MOV
carry the mix and the original as AAC 192 kb/s and get the stems as sidecar FLAC files next
to the video (``<name>.stem01.flac`` …), since players handle many MP4 audio tracks poorly.
Chapters mark scene starts, titled with how each scene begins ("Scene 2 (fade)"), from an
FFMETADATA input; MKV and MP4/MOV keep them and read back without warnings.

The file is written under a temporary name in the output directory and renamed into place,
then verified: stream count, audio and video durations within one frame of the source, and
the same number of picture packets as the source (a copied stream loses none).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import av

from tasks.errors import MediaError
from tasks.ffmpeg_bin import FFmpegError, run_ffmpeg
from tasks.ingest import sha256_file
from tasks.media_paths import display, from_uri


@dataclass
class OutputResult:
    uri: str
    sha256: str
    container: str
    video_codec: str
    audio_codecs: list[str]
    streams: int
    sidecars: list[str] = field(default_factory=list)

    def output_fields(self) -> dict[str, Any]:
        return {"uri": self.uri, "sha256": self.sha256, "container": self.container,
                "video_codec": self.video_codec, "audio_codecs": self.audio_codecs,
                "streams": self.streams, "sidecars": self.sidecars}


def _escape_meta(text: str) -> str:
    return "".join("\\" + c if c in "=;#\\\n" else c for c in text)


TRANSITION_NAMES = {"start": "", "cut": "cut", "fade": "fade", "dissolve": "dissolve", "wipe": "wipe"}


def chapter_title(number: int, transition: str | None) -> str:
    """"Scene 3 (fade)": the scene's number and how it begins (nothing for the asset start)."""
    name = TRANSITION_NAMES.get(transition or "", transition or "")
    return f"Scene {number}" + (f" ({name})" if name else "")


def _chapters_file(path: Path, scene_starts: Sequence[float | Sequence[Any]], duration: float) -> None:
    """FFMETADATA chapters; ``scene_starts`` items are a start time or [start time, transition]."""
    lines = [";FFMETADATA1"]
    kinds: dict[float, str | None] = {}
    for item in scene_starts:
        t, kind = (float(item), None) if isinstance(item, (int, float)) else (float(item[0]), item[1])
        if 0 <= t < duration:
            kinds.setdefault(round(t, 3), kind)
    starts = sorted(kinds)
    for i, s in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else duration
        lines += ["[CHAPTER]", "TIMEBASE=1/1000", f"START={int(round(s * 1000))}", f"END={int(round(end * 1000))}",
                  f"title={_escape_meta(chapter_title(i + 1, kinds[s]))}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _is_flac(path: str) -> bool:
    """True for a native FLAC file (its ``fLaC`` marker), whatever the file is called."""
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"fLaC"
    except OSError:
        return False


def video_packets(path: str) -> tuple[int, float, str]:
    """(picture packet count, video duration s, codec) by demuxing with PyAV."""
    with open(path, "rb") as fh, av.open(fh) as c:
        v = c.streams.video[0]
        n = sum(1 for p in c.demux(v) if p.size)
        dur = float(v.duration * v.time_base) if v.duration else (c.duration or 0) / 1e6
        return n, dur, v.codec_context.name


def mux_output(video: Path | str, mix: dict[str, Any], out_dir: Path, *, container: str = "mkv",
               name: str, has_original: bool, scene_starts: Sequence[float | Sequence[Any]],
               duration_s: float, fps: float) -> OutputResult:
    """Write ``out_dir/name.<container>`` (atomically) and verify it against the source."""
    src = from_uri(str(video))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ext = {"mkv": "mkv", "mp4": "mp4", "mov": "mov"}[container]
    final = out_dir / f"{name}.{ext}"
    tmp = out_dir / f".{name}.{os.getpid()}.tmp.{ext}"
    chapters = out_dir / f".{name}.{os.getpid()}.chapters.txt"
    _chapters_file(chapters, scene_starts, duration_s)
    stems = sorted(mix.get("stems", []), key=lambda s: s["order"])
    inline_stems = stems if container == "mkv" else []
    args: list[str] = ["-y", "-i", src, "-i", str(mix["mix_path"])]
    for s in inline_stems:
        args += ["-i", s["path"]]
    args += ["-f", "ffmetadata", "-i", str(chapters)]
    chap_idx = 2 + len(inline_stems)
    args += ["-map", "0:v:0", "-map", "1:a:0"]
    if has_original:
        args += ["-map", "0:a:0"]
    for i in range(len(inline_stems)):
        args += ["-map", f"{2 + i}:a:0"]
    # Global and stream tags of the inputs are dropped; chapter titles are kept. A bare
    # "-map_metadata -1" would drop the chapters' titles too, and the MP4 muxer then references
    # a QuickTime chapter text track it never writes ("Referenced QT chapter track not found"
    # on every read).
    args += ["-map_metadata:g", "-1", "-map_metadata:s", "-1", "-map_chapters", str(chap_idx),
             "-c:v", "copy"]
    if container == "mkv":
        # The mix and stems arrive as FLAC (tasks/mix.py writes them): their packets are copied,
        # not decoded and re-encoded, which was ~80 % of the mux time on a 2-minute asset.
        # Anything else (the original soundtrack, a WAV) is encoded to FLAC.
        sources = [str(mix["mix_path"])] + ([""] if has_original else []) + [s["path"] for s in inline_stems]
        for i, source in enumerate(sources):
            args += [f"-c:a:{i}", "copy" if source and _is_flac(source) else "flac"]
    else:
        args += ["-c:a", "aac", "-b:a", "192k"]
    titles = ["stepfoley mix"] + (["original"] if has_original else []) + [
        f"stem {s['order']}: {s['title']}" for s in inline_stems]
    # MP4/MOV: the title goes in the track's handler name; as a udta "name" atom, ffmpeg's own
    # reader warns "UDTA parsing failed retrying raw" on every read of titles over 4 characters.
    key = "title" if container == "mkv" else "handler_name"
    for i, t in enumerate(titles):
        args += [f"-metadata:s:a:{i}", f"{key}={t}", f"-metadata:s:a:{i}", "language=und",
                 f"-disposition:a:{i}", "default" if i == 0 else "0"]
    if container != "mkv":
        args += ["-movflags", "+faststart"]
    # Same inputs → same bytes: no random segment UID, creation time or encoder banner, so a
    # resumed run's output hashes equal an uninterrupted run's.
    args += ["-fflags", "+bitexact", "-flags:a", "+bitexact", str(tmp)]
    # The source's picture packets are counted while ffmpeg writes (PyAV demuxes without the GIL),
    # so verification costs one pass over the output only.
    with ThreadPoolExecutor(1, thread_name_prefix="stepfoley-mux-src") as pool:
        src_count = pool.submit(video_packets, src)
        try:
            run_ffmpeg(args)
            streams = _verify(src, tmp, 1 + len(titles), duration_s, fps, src_count.result())
            os.replace(tmp, final)
        except FFmpegError as exc:
            raise MediaError(f"{display(src)}: mux failed ({exc})", path=src, stage="mux") from exc
        finally:
            tmp.unlink(missing_ok=True)
            chapters.unlink(missing_ok=True)
    sidecars = []
    if container != "mkv":
        for s in stems:
            side = out_dir / f"{name}.stem{s['order']:02d}.flac"
            part = side.with_name(f".{side.name}.{os.getpid()}.tmp")
            with open(s["path"], "rb") as a, open(part, "wb") as b:
                b.write(a.read())
            os.replace(part, side)
            sidecars.append(str(side))
    return OutputResult(str(final.resolve()), sha256_file(final), container, streams["video_codec"],
                        streams["audio_codecs"], streams["count"], sidecars)


def _verify(src: str, out: Path, expected_streams: int, duration_s: float, fps: float,
            source: tuple[int, float, str]) -> dict[str, Any]:
    n_src, _, codec = source
    with open(out, "rb") as fh, av.open(fh) as c:
        # MP4/MOV carry the chapters as a QuickTime text track (a data stream): not counted
        count = sum(1 for s in c.streams if s.type in ("video", "audio"))
        audio = [a.codec_context.name for a in c.streams.audio]
        adur = [float(a.duration * a.time_base) for a in c.streams.audio if a.duration]
        total = (c.duration or 0) / 1e6
        v = c.streams.video[0]
        codec_out = v.codec_context.name
        n_out = sum(1 for p in c.demux(v) if p.size)
    frame = 1.0 / fps if fps else 0.05
    problems = []
    if count != expected_streams:
        problems.append(f"{count} streams instead of {expected_streams}")
    if n_out != n_src or codec_out != codec:
        problems.append(f"picture changed ({n_src} {codec} packets in, {n_out} {codec_out} out)")
    if adur and abs(max(adur) - duration_s) > frame + 0.05:
        problems.append(f"audio lasts {max(adur):.3f} s, video {duration_s:.3f} s")
    if abs(total - duration_s) > max(frame, 0.1) + 0.05:
        problems.append(f"output lasts {total:.3f} s instead of {duration_s:.3f} s")
    if problems:
        raise MediaError(f"{display(src)}: output verification failed: {'; '.join(problems)}",
                         path=src, stage="mux")
    return {"count": count, "audio_codecs": audio, "video_codec": codec_out}
