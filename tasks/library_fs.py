"""Libraries behind an fsspec URI: discovery over any file system fsspec knows, staged locally.

A library may be given as a URI (``memory://lib``, ``s3://bucket/footage``, ``file:///abs/dir``,
chained ``simplecache::…``): any protocol ``fsspec.available_protocols()`` lists. PyAV, ffmpeg
and the hashing all want an ordinary local file, so each remote file is **staged** into a
content-addressed cache under the data dir and every later stage reads the staged copy:

    DATA_DIR/library-cache/<sha[:2]>/<sha256>/<file name>     the content, read-only by convention
    DATA_DIR/library-cache/<sha[:2]>/<sha256>/.<name>.uri     the URI it came from (last staged)
    DATA_DIR/library-cache/index/<sha256(uri)>.json           URI → sha256 + remote fingerprint
    DATA_DIR/library-cache/tmp/                               partial copies (same file system)

Staging streams the file (1 MiB chunks) into a temporary name while computing its sha256, then
renames it atomically into its address: a crash leaves only a ``tmp/`` part, never a half file
under a real address, and two processes staging the same content write the same bytes. The
file keeps its own name inside its address so outputs are still named after the footage.
Re-discovery is idempotent: when the remote fingerprint (size plus whatever version marks the
file system reports: mtime, ETag, checksum) matches the index and the staged copy is intact in
size, nothing is read again.

``file://`` (and ``local://``) URIs name local files: they are used in place, walked by the
local discovery (symlink-loop, FIFO and permission handling included) and recorded by their
path, so a library given as a path and as a ``file://`` URI is the same library. For staged
files the original URI is what the records and messages show; the staged path is recorded as a
second location of the asset so later stages, which see the staged path, find it.

Sidecar prompts next to a remote video (``clip.mp4.prompts.txt``, else ``clip.prompts.txt``)
are staged with it, as ``<staged name>.prompts.txt`` in the video's address, re-read on every
staging (they are small and the user edits them), and removed there when the remote one is gone.
Two URIs with identical video content share one address, so they share the sidecar last staged;
give such copies their prompts with ``--prompts FILE.csv`` (matched by sha256) instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from tasks.config import load_settings
from tasks.errors import MediaError, TransientError
from tasks.library_files import SIDECAR_SUFFIX, VIDEO_EXTENSIONS, is_sidecar, is_video_candidate
from tasks.media_paths import display

T = TypeVar("T")

CACHE_DIRNAME = "library-cache"
_CHUNK = 1 << 20
_SHA_DIR = re.compile(r"^[0-9a-f]{64}$")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*(::[A-Za-z][A-Za-z0-9+.\-]*)*://")
_FINGERPRINT_KEYS = ("size", "mtime", "LastModified", "last_modified", "modified", "created",
                     "ETag", "etag", "md5", "md5Hash", "crc32c", "checksum", "version_id", "generation")
# longest file name kept for a staged copy (bytes); file systems stop at 255
_MAX_NAME = 200


@dataclass(frozen=True)
class StagedFile:
    uri: str
    path: Path
    sha256: str
    size_bytes: int
    copied: bool  # False when an earlier staging was reused


def cache_root(data_dir: str | os.PathLike[str]) -> Path:
    """The staging cache of a data dir."""
    return Path(os.path.abspath(data_dir)) / CACHE_DIRNAME


def default_cache_root() -> Path:
    """The cache of the configured data dir (``STEPFOLEY_DATA_DIR`` or the default)."""
    return cache_root(load_settings().data_dir)


def is_uri(library: str | os.PathLike[str]) -> bool:
    """True when ``library`` is a URI of a protocol fsspec knows (``file://`` included)."""
    if not isinstance(library, str) or not _URI.match(library):
        return False
    import fsspec

    protocols = library.split("://", 1)[0].split("::")
    known = set(fsspec.available_protocols())
    return all(p in known for p in protocols)


def local_path_of(uri: str) -> Path | None:
    """The local path a ``file://``/``local://`` URI names; None for any other protocol."""
    import fsspec
    from fsspec.core import url_to_fs
    from fsspec.implementations.local import LocalFileSystem

    protocol = uri.split("://", 1)[0]
    try:
        if "::" in protocol or not issubclass(fsspec.get_filesystem_class(protocol), LocalFileSystem):
            return None
    except (ImportError, ValueError):  # e.g. s3:// without s3fs: discovery reports it
        return None
    # fsspec's own reading (no percent-decoding), so the URI means what fsspec would open
    return Path(url_to_fs(uri)[1])


def discover_staged(uri: str, cache_dir: Path) -> Iterator[StagedFile | MediaError]:
    """Every candidate video under a remote library, staged (lazily: one file per step, so a
    caller that stops early stages no more), or why one is unusable."""
    for item in _walk_remote(uri):
        if isinstance(item, MediaError):
            yield item
            continue
        try:
            staged = stage(item[0], cache_dir, item[1:])
        except MediaError as err:
            yield err
            continue
        yield staged


def _walk_remote(uri: str) -> Iterator[tuple[str, Any, str, dict[str, Any]] | MediaError]:
    """``(file uri, fs, fs path, info)`` of each candidate, sorted by path (bytes).

    Same rules as local discovery: a library that is one file is that file; in a folder,
    hidden files and folders and ``*.prompts.txt`` sidecars are skipped and a file is a
    candidate when its name says video or its first 16 bytes (read remotely) carry a video
    container signature, so other files are never downloaded.
    """
    from fsspec.core import url_to_fs

    try:
        fs, root = url_to_fs(uri)
        is_file = fs.isfile(root)
        exists = is_file or fs.isdir(root)
    except (ImportError, ValueError) as exc:  # backend not installed, malformed URI
        yield MediaError(f"{display(uri)}: cannot open library ({_reason(exc)})", path=uri, stage="discover")
        return
    except OSError as exc:
        raise _transient(uri, "cannot open library", exc) from exc
    if not exists:
        yield MediaError(f"{display(uri)}: library not found", path=uri, stage="discover")
        return
    try:
        if is_file:
            yield uri, fs, root, fs.info(root)
            return
        entries = fs.find(root, withdirs=False, detail=True)
    except OSError as exc:
        raise _transient(uri, "cannot list library", exc) from exc
    base = uri if uri.endswith("://") else uri.rstrip("/") + "/"
    for name in sorted(entries, key=lambda n: n.encode("utf-8", "surrogateescape")):
        info = entries[name]
        if info.get("type", "file") != "file":
            continue
        rel = name[len(root):].lstrip("/") if name.startswith(root) else name.rsplit("/", 1)[-1]
        if any(part.startswith(".") for part in rel.split("/")) or is_sidecar(rel):
            continue
        file_uri = base + rel
        if os.path.splitext(rel)[1].lower() not in VIDEO_EXTENSIONS:
            try:
                with fs.open(name, "rb") as fh:
                    head = fh.read(16)
            except (FileNotFoundError, PermissionError) as exc:
                yield MediaError(f"{display(file_uri)}: cannot read ({_reason(exc)})", path=file_uri,
                                 stage="discover")
                continue
            except OSError as exc:
                raise _transient(file_uri, "cannot read", exc) from exc
            if not is_video_candidate(rel, head, int(info.get("size") or 0)):
                continue
        yield file_uri, fs, name, info


def stage(uri: str, cache_dir: Path, remote: tuple[Any, str, dict[str, Any]] | None = None) -> StagedFile:
    """Copy one remote file into the cache, or reuse an earlier copy (module docstring)."""
    if remote is None:
        from fsspec.core import url_to_fs

        fs, name = url_to_fs(uri)
        info = fs.info(name)
    else:
        fs, name, info = remote
    cache_dir = Path(cache_dir)
    fingerprint = {k: _fingerprint_value(info[k]) for k in _FINGERPRINT_KEYS if info.get(k) is not None}
    index = cache_dir / "index" / f"{hashlib.sha256(uri.encode('utf-8', 'surrogateescape')).hexdigest()}.json"
    try:
        known = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = None
    if known and known.get("uri") == uri and known.get("fingerprint") == fingerprint:
        path = Path(known["path"])
        try:
            intact = path.parent.name == known["sha256"] and path.stat().st_size == int(info.get("size") or 0)
        except OSError:
            intact = False  # the copy is gone: stage again
        if intact:
            _stage_sidecar(fs, name, path)
            return StagedFile(uri, path, known["sha256"], path.stat().st_size, copied=False)
    tmp_dir = cache_dir / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    part = tmp_dir / f"{uuid.uuid4().hex}.part"
    h = hashlib.sha256()
    size = 0
    try:
        src = _remote(uri, lambda: fs.open(name, "rb"))
        with src, open(part, "wb") as dst:
            while chunk := _remote(uri, lambda: src.read(_CHUNK)):
                h.update(chunk)
                dst.write(chunk)  # a local write error (disk full) propagates as it is
                size += len(chunk)
        sha = h.hexdigest()
        address = cache_dir / sha[:2] / sha
        address.mkdir(parents=True, exist_ok=True)
        path = address / _local_name(uri)
        if not (path.is_file() and path.stat().st_size == size):
            os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)  # also drops the part when the content was already there
    _write_atomic(address / f".{path.name}.uri", uri)
    _stage_sidecar(fs, name, path)
    index.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(index, json.dumps({"uri": uri, "fingerprint": fingerprint, "sha256": sha,
                                     "path": str(path)}, sort_keys=True))
    return StagedFile(uri, path, sha, size, copied=True)


def _stage_sidecar(fs: Any, name: str, staged: Path) -> None:
    """Copy the remote video's prompts sidecar next to its staged copy (or drop a stale one)."""
    target = staged.with_name(staged.name + SIDECAR_SUFFIX)
    stem = name.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    for cand in (name + SIDECAR_SUFFIX, name.rsplit("/", 1)[0] + "/" + stem + SIDECAR_SUFFIX
                 if "/" in name else stem + SIDECAR_SUFFIX):
        try:
            with fs.open(cand, "rb") as fh:
                data = fh.read(1 << 20)  # prompts files are a few lines; cap what is read
        except (FileNotFoundError, IsADirectoryError):
            continue
        except OSError as exc:
            raise _transient(cand, "cannot read prompts sidecar", exc) from exc
        part = staged.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        part.write_bytes(data)
        os.replace(part, target)
        return
    target.unlink(missing_ok=True)


def _remote(uri: str, call: Callable[[], T]) -> T:
    """One call on the remote file system, its errors sorted by the retry policy."""
    try:
        return call()
    except (FileNotFoundError, PermissionError) as exc:
        raise MediaError(f"{display(uri)}: cannot read ({_reason(exc)})", path=uri, stage="discover") from exc
    except OSError as exc:
        raise _transient(uri, "cannot read", exc) from exc


def origin_of(path: str | os.PathLike[str]) -> str | None:
    """The URI a staged copy came from, or None when ``path`` is not in a staging cache."""
    p = Path(path)
    if not _SHA_DIR.match(p.parent.name) or p.parent.parent.name != p.parent.name[:2]:
        return None
    try:
        return (p.parent / f".{p.name}.uri").read_text(encoding="utf-8") or None
    except (OSError, UnicodeDecodeError):
        return None


def local_path(uri: str, sha256: str, data_dir: str | os.PathLike[str]) -> str:
    """Where to read an asset recorded under ``uri`` (with content ``sha256``) on this machine.

    Plain paths are returned as they are; ``file://`` URIs as their path; a remote URI as its
    staged copy, which must exist (a :class:`MediaError` tells to discover the library again).
    """
    if not is_uri(uri):
        return uri
    local = local_path_of(uri)
    if local is not None:
        return str(local)
    path = cache_root(data_dir) / sha256[:2] / sha256 / _local_name(uri)
    if not path.is_file():
        raise MediaError(f"{display(uri)}: no staged copy in {display(path.parent)} "
                         "(run discovery on its library again)", path=uri, stage="ingest")
    return str(path)


def _local_name(uri: str) -> str:
    """The staged copy's file name: the URI's last path segment, shortened if very long."""
    name = uri.rstrip("/").rsplit("/", 1)[-1] or "video"
    if len(name.encode("utf-8", "surrogateescape")) > _MAX_NAME:
        stem, ext = os.path.splitext(name)
        ext = ext if len(ext.encode()) <= 16 else ""
        keep = stem.encode("utf-8", "surrogateescape")[:_MAX_NAME - len(ext.encode())]
        name = keep.decode("utf-8", "ignore") + ext
    if name.startswith("."):  # never a hidden name: the cache's own markers are
        name = "_" + name[1:]
    return name


def _fingerprint_value(value: Any) -> str:
    """One spelling per value: listings and ``info`` of one file system may report the same
    time as a float and as a datetime (fsspec's memory file system does)."""
    if isinstance(value, datetime):
        value = value.timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{float(value):.3f}"
    return str(value)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _reason(exc: BaseException) -> str:
    return " ".join(str(getattr(exc, "strerror", None) or exc or type(exc).__name__).split())


def _transient(uri: str, what: str, exc: OSError) -> TransientError:
    """A failed remote read: transient (network, throttling) unless proven otherwise."""
    return TransientError(f"{display(uri)}: {what} ({_reason(exc)})")
