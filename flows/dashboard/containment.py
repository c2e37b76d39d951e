"""Which files the dashboard may serve: a file the database records, resolved (symlinks
followed), inside one of the roots that may hold it.

Stems, mixes and spectrograms live in the data directory. Output videos live where the run that
made them declared (``stepfoley run --out DIR``, recorded in ``Run.parameters["settings"]``:
``out_dir``, else ``<data_dir>/outputs``), so their roots are the data directory plus every
run's declared output directory, read incrementally as runs are added. Clients only ever send
row ids; a recorded path that resolves outside its roots (``..``, a symlink out, an absolute
path elsewhere, a remote URI) is refused like a missing file.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterable, Mapping
from urllib.parse import unquote, urlparse

from sqlalchemy import select
from sqlalchemy.orm import Session

from sql.schema import Run
from tasks.media_paths import from_uri


def recorded_path(uri: str, data_dir: Path) -> Path:
    """The file-system path a stored URI names (relative URIs are relative to ``data_dir``)."""
    if uri.startswith("file://"):
        p = Path(unquote(urlparse(uri).path))
    else:
        p = Path(from_uri(uri))
    return p if p.is_absolute() else data_dir / p


def contained_file(uri: str | None, data_dir: Path, roots: Iterable[Path]) -> Path | None:
    """The real file ``uri`` names if it lies inside one of ``roots``, else None."""
    if not uri or ("://" in uri and not uri.startswith("file://")):
        return None
    try:
        real = recorded_path(uri, data_dir).resolve(strict=True)
    except (OSError, RuntimeError):  # missing, or a symlink loop
        return None
    if not real.is_file():
        return None
    # Containment after resolving symlinks: a link pointing out of every root is refused.
    return real if any(real.is_relative_to(root) for root in roots) else None


def declared_output_dir(parameters: Mapping[str, Any] | None) -> Path | None:
    """The output directory a run's recorded settings declare (None when they declare none)."""
    settings = (parameters or {}).get("settings") if isinstance(parameters, Mapping) else None
    if not isinstance(settings, Mapping):
        return None
    if isinstance(settings.get("out_dir"), str) and settings["out_dir"]:
        return Path(settings["out_dir"])
    if isinstance(settings.get("data_dir"), str) and settings["data_dir"]:
        return Path(settings["data_dir"]) / "outputs"
    return None


class OutputRoots:
    """The data directory plus every run's declared output directory, resolved.

    Runs only ever get added, so each call reads just the runs newer than the last one seen.
    A relative directory (recorded by older versions) is taken relative to this process's
    working directory, where the dashboard is normally started from.
    """

    def __init__(self, data_dir: Path) -> None:
        self._roots: set[Path] = set()
        self._add(data_dir)
        self._last_run_id = 0
        self._lock = threading.Lock()

    def _add(self, root: Path) -> None:
        try:
            self._roots.add(root.resolve())
        except (OSError, RuntimeError):
            pass

    def current(self, session: Session) -> frozenset[Path]:
        with self._lock:
            rows = session.execute(select(Run.id, Run.parameters).where(Run.id > self._last_run_id)
                                   .order_by(Run.id)).all()
            for run_id, parameters in rows:
                root = declared_output_dir(parameters)
                if root is not None:
                    self._add(root)
                self._last_run_id = max(self._last_run_id, int(run_id))
            return frozenset(self._roots)
