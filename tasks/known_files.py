"""A library's files as the database last saw them: the stat index, loaded once per walk.

Discovery (tasks/discovery.py) asks :class:`KnownFiles` about every file it walks. The
library's ``asset_path`` entries come in one query when the walk starts (a library of 10,000
done files is one ``SELECT``, not 10,000), so an unchanged file (tasks/stat_index.py) costs a
dictionary lookup; the ``last_seen_at`` of every unchanged file is written in batches at the
end. A file whose uri does not start with the library's (a percent-encoded non-UTF-8 name) is
looked up on its own.

The prefix of a library is the uri its files are recorded under: its local path for a directory
or a ``file://`` URI (the walk records local paths), the URI itself for a remote library (its
files are recorded by their original URIs; the stat compared is that of the staged copy, whose
inode changes whenever new content is staged).
"""

from __future__ import annotations

from typing import Any, Mapping

from sqlalchemy.orm import Session

from sql.path_index import mark_paths_seen, path_entry, path_index, set_path_stat
from tasks.library_fs import is_uri, local_path_of
from tasks.media_paths import from_uri, to_uri
from tasks.runs import session
from tasks.stat_index import FileStat, unchanged


def library_prefix(library: str) -> str:
    """The uri prefix every file of ``library`` (a path or URI, as discover gets it) is recorded
    under."""
    root = from_uri(library)
    if is_uri(root):
        local = local_path_of(root)
        return root if local is None else to_uri(local)
    return library


class KnownFiles:
    """The stat index of one library for one walk."""

    def __init__(self, settings: Mapping[str, Any], library: str) -> None:
        self.settings = settings
        self.prefix = library_prefix(library)
        with session(settings) as db:
            self.entries = path_index(db, self.prefix)
        self.seen: list[int] = []

    def unchanged(self, uri: str, stat: FileStat | None) -> dict[str, Any] | None:
        """The asset of ``uri`` (``id``, ``sha256``, ``status``) when the file is unchanged since
        it was hashed, else None (then it must be hashed and probed again); its ``last_seen_at``
        is written by :meth:`close`."""
        entry = self._entry(uri, stat)
        if entry is None:
            return None
        self.seen.append(int(entry["path_id"]))
        return {"id": entry["asset_id"], "sha256": entry["sha256"], "status": entry["status"]}

    def lookup(self, uri: str, stat: FileStat | None) -> dict[str, Any] | None:
        """As :meth:`unchanged`, without noting the file as seen (a look ahead of the run)."""
        entry = self._entry(uri, stat)
        if entry is None:
            return None
        return {"id": entry["asset_id"], "sha256": entry["sha256"], "status": entry["status"]}

    def _entry(self, uri: str, stat: FileStat | None) -> Mapping[str, Any] | None:
        entry = self.entries.get(uri)
        if entry is None and stat is not None and not uri.startswith(self.prefix):
            with session(self.settings) as db:
                entry = path_entry(db, uri)
        if entry is None or not unchanged(entry, stat):
            return None
        return entry

    @staticmethod
    def record(db: Session, uri: str, stat: FileStat | None) -> None:
        """The file at ``uri`` was just hashed with this stat (in the session that wrote its
        path row)."""
        if stat is not None:
            set_path_stat(db, uri, **stat.columns())

    def close(self) -> None:
        """Write the batched ``last_seen_at`` of the unchanged files."""
        if self.seen:
            with session(self.settings) as db:
                mark_paths_seen(db, self.seen)
            self.seen = []
