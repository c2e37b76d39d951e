"""Discovery: which files of a library need work, registered in the provenance database.

The first stage of every backfill, and on most nights the only one with anything to look at:
an archive is almost all done. So this module, unlike the stages after it, imports no model,
media-processing or generation code (no torch, diffusers, transformers, scipy): a backfill
whose discovery finds nothing to do ends without loading any of it (flows/backfill.py), and
the CLI asks :func:`has_work` before it imports the pipeline and preloads the models
(flows/cli_run.py). Both read the library's stat index (tasks/known_files.py): a file whose
(size, mtime, inode, device) is the one recorded when it was hashed keeps its asset without a
hash or a probe (tasks/stat_index.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from sql.repository import (link_run_asset, record_asset_path, set_asset_status,
                            upsert_asset)
from tasks.errors import MediaError
from tasks.ingest import discover as walk_library
from tasks.ingest import hash_and_probe, sha256_file
from tasks.known_files import KnownFiles
from tasks.library_fs import cache_root, is_uri, local_path_of
from tasks.media_paths import from_uri, to_uri
from tasks.runs import as_settings, record_failure, session


def discover(library: str, settings: Mapping[str, Any], run_id: int, limit: int | None = None,
             paths: list[str] | None = None) -> list[dict[str, Any]]:
    """Register every video of the library; bad files become failure rows; return the to-do list.

    The database decides what is to do: assets whose content hash is already ``done`` are left
    out (a renamed or moved copy included: its new path is recorded against the same asset).
    A library may be an fsspec URI: its files are staged locally (tasks/library_fs.py), the
    to-do list carries the staged paths and the records the original URIs.

    Only what changed is read: a file whose stat is the one recorded when it was hashed
    (tasks/stat_index.py; the library's entries come in one query, tasks/known_files.py) keeps
    its asset without a hash or a probe; when that asset is done it costs no write either (it is
    not linked to this run, which takes nothing on for it).
    """
    todo: list[dict[str, Any]] = []
    wanted = {from_uri(p) for p in paths} if paths is not None else None
    known = KnownFiles(settings, library)
    for item in walk_library(from_uri(library), cache_dir=cache_root(as_settings(settings).data_dir)):
        if isinstance(item, MediaError):
            record_failure(settings, uri=to_uri(item.path or library), stage="discover", err=item,
                           run_id=run_id)
            continue
        path = to_uri(item.path)
        source = item.uri or path
        if wanted is not None and str(item.path) not in wanted and source not in wanted:
            continue
        asset = known.unchanged(source, item.stat)  # {"id", "sha256", "status"} or None
        if asset is None:
            try:
                facts = hash_and_probe(item)
            except MediaError as err:
                record_bad_file(settings, path, err, run_id, source)
                continue
            with session(settings) as s:
                asset = upsert_asset(s, library=to_uri(library), **facts.asset_fields())
                record_asset_path(s, asset["id"], source)
                if source != path:
                    # later stages see the staged copy's path: let them find the asset by it too
                    record_asset_path(s, asset["id"], path)
                known.record(s, source, item.stat)
                link_run_asset(s, run_id, asset["id"])
        elif asset["status"] != "done":
            with session(settings) as s:
                link_run_asset(s, run_id, asset["id"])
        if asset["status"] == "done":
            continue
        todo.append({"path": path, "asset_id": asset["id"], "sha256": asset["sha256"]})
        if limit is not None and len(todo) >= limit:
            break
    known.close()
    return todo


def has_work(library: str, settings: Mapping[str, Any], paths: list[str] | None = None) -> bool:
    """Whether :func:`discover` would hand anything on: a file that is new, changed since it
    was hashed, or whose asset is not ``done``. Reads stats and the stat index (one query),
    hashes, probes and writes nothing; stops at the first such file.

    A guess made ahead of the run, for what to load: the run's own discovery decides. A remote
    library answers True without a walk (its walk stages every file; that belongs to the run).
    Files the walk cannot use (unreadable directories, symlink loops) are not work: discovery
    records them without any model.
    """
    root = from_uri(library)
    if is_uri(root) and local_path_of(root) is None:
        return True
    wanted = {from_uri(p) for p in paths} if paths is not None else None
    known = KnownFiles(settings, library)
    for item in walk_library(root):
        if isinstance(item, MediaError):
            continue
        source = item.uri or to_uri(item.path)
        if wanted is not None and str(item.path) not in wanted and source not in wanted:
            continue
        asset = known.lookup(source, item.stat)
        if asset is None or asset["status"] != "done":
            return True
    return False


def record_bad_file(settings: Mapping[str, Any], path: str, err: MediaError, run_id: int | None,
                    source: str | None = None) -> None:
    """A file that is not usable video: an asset row (when it can be hashed) marked failed.

    ``source`` is the URI a staged copy (``path``) came from: the records name it."""
    asset_id = None
    try:
        sha = sha256_file(Path(from_uri(path)))
        with session(settings) as s:
            asset = upsert_asset(s, sha256=sha, uri=source or path, status="failed", error=str(err))
            asset_id = asset["id"]
            set_asset_status(s, asset_id, "failed", error=str(err))
            if run_id is not None:
                link_run_asset(s, run_id, asset_id)
    except OSError:
        pass
    record_failure(settings, uri=source or path, stage=err.stage, err=err, run_id=run_id, asset_id=asset_id)
