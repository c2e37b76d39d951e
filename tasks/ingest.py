"""Discover videos in a library and register what they are.

Discovery walks the directory tree (following directory symlinks, but never into a directory
it has already visited: a symlink loop is reported, not walked forever). Which files are
video candidates (by name or first bytes) is decided by tasks/library_files.py; candidates are
then probed for real. Sidecars (``*.prompts.txt``), manifests and hidden files are not
candidates. Hashing streams the file (1 MiB chunks, sha256).

A library given as an fsspec URI (``memory://…``, ``s3://…``) is walked by tasks/library_fs.py,
which stages each candidate into a local content-addressed cache; the discovered file is the
staged copy and carries the original URI, which records and messages show. ``file://`` URIs
are local paths and go through the local walk.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from tasks import library_fs
from tasks.errors import MediaError
from tasks.library_files import VIDEO_EXTENSIONS, is_sidecar, looks_like_video
from tasks.media_paths import display, to_uri
from tasks.probe import ProbeResult, probe
from tasks.stat_index import FileStat


@dataclass(frozen=True)
class DiscoveredFile:
    path: Path
    size_bytes: int
    uri: str | None = None  # where a staged copy came from (None: ``path`` is the file itself)
    stat: FileStat | None = None  # ``path``'s identity when walked (tasks/stat_index.py)


@dataclass
class IngestResult:
    path: Path
    sha256: str
    probe: ProbeResult
    source_uri: str | None = None

    def asset_fields(self) -> dict[str, Any]:
        p = self.probe
        return {"sha256": self.sha256, "uri": self.source_uri or to_uri(self.path), "size_bytes": p.size_bytes,
                "container": p.container, "duration_s": p.duration_s, "fps": p.fps, "vfr": p.vfr,
                "width": p.width, "height": p.height, "rotation": p.rotation,
                "video_codec": p.video_codec, "has_audio": p.has_audio}

    def probe_dict(self) -> dict[str, Any]:
        return self.probe.to_json()


def discover(library: Path | str, cache_dir: Path | None = None) -> Iterator[DiscoveredFile | MediaError]:
    """Every candidate video under ``library`` (sorted, deterministic), or why one is unusable.

    ``library`` is a path or an fsspec URI; remote files are staged into ``cache_dir``
    (default: the data dir's ``library-cache``) as they are discovered.
    """
    if library_fs.is_uri(library):
        local = library_fs.local_path_of(str(library))
        if local is None:
            cache = Path(cache_dir) if cache_dir is not None else library_fs.default_cache_root()
            for item in library_fs.discover_staged(str(library), cache):
                yield item if isinstance(item, MediaError) else DiscoveredFile(
                    item.path, item.size_bytes, item.uri, FileStat.read(item.path))
            return
        library = local
    library = Path(library)
    if library.is_file():
        taken = time.time_ns()
        st_lib = library.stat()
        yield DiscoveredFile(library, st_lib.st_size, stat=FileStat.of(st_lib, taken))
        return
    if not library.is_dir():
        yield MediaError(f"{display(library)}: library not found", path=str(library), stage="discover")
        return
    seen: set[tuple[int, int]] = set()
    stack = [library]
    while stack:
        d = stack.pop()
        try:
            st = d.stat()
        except OSError as exc:
            yield MediaError(f"{display(d)}: cannot open directory ({exc.strerror})", path=str(d),
                             stage="discover")
            continue
        if (st.st_dev, st.st_ino) in seen:
            yield MediaError(f"{display(d)}: symlink loop (directory already visited), skipped",
                             path=str(d), stage="discover")
            continue
        seen.add((st.st_dev, st.st_ino))
        try:
            entries = sorted(os.scandir(d), key=lambda e: os.fsencode(e.name))
        except OSError as exc:
            yield MediaError(f"{display(d)}: cannot list directory ({exc.strerror})", path=str(d),
                             stage="discover")
            continue
        subdirs = []
        for e in entries:
            if e.name.startswith("."):
                continue
            p = Path(e.path)
            try:
                is_dir = e.is_dir(follow_symlinks=True)
                taken = time.time_ns()  # before the stat: the racy rule needs its moment
                st_e = p.stat()
            except OSError as exc:
                if e.is_symlink():
                    yield MediaError(f"{display(p)}: broken or looping symlink ({exc.strerror})",
                                     path=str(p), stage="discover")
                continue
            if is_dir:
                subdirs.append(p)
                continue
            if not stat.S_ISREG(st_e.st_mode):
                if p.suffix.lower() in VIDEO_EXTENSIONS:
                    yield MediaError(f"{display(p)}: not a regular file", path=str(p), stage="discover")
                continue
            if is_sidecar(p.name):
                continue
            if not os.access(p, os.R_OK):
                yield MediaError(f"{display(p)}: permission denied", path=str(p), stage="discover")
                continue
            if looks_like_video(p):
                yield DiscoveredFile(p, st_e.st_size, stat=FileStat.of(st_e, taken))
        stack.extend(reversed(subdirs))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def ingest_path(path: Path, source_uri: str | None = None) -> IngestResult:
    """Hash + probe one file (probe first: a bad file fails before a long hash).

    A staged copy of a remote file is reported under its original URI (given, or read back
    from the cache), in failures too.
    """
    path = Path(path)
    looked_up = source_uri is None
    source_uri = source_uri or library_fs.origin_of(path)
    try:
        facts = probe(path)
        digest = sha256_file(path)
    except MediaError as err:
        if source_uri is None:
            raise
        reason = str(err).removeprefix(f"{display(path)}: ")
        raise MediaError(f"{display(source_uri)}: {reason}", path=source_uri, stage=err.stage) from err
    except OSError as exc:
        raise MediaError(f"{display(source_uri or path)}: cannot read ({exc.strerror})",
                         path=source_uri or str(path), stage="ingest") from exc
    if looked_up and source_uri is not None and digest != path.parent.name:
        source_uri = None  # no longer the content its cache address says: not that URI's copy
    return IngestResult(path, digest, facts, source_uri)


def hash_and_probe(item: DiscoveredFile) -> IngestResult:
    return ingest_path(item.path, item.uri)
