"""Which inbox files are complete: size and mtime unchanged across consecutive scans.

A copy in progress grows between scans; a finished upload holds still. The scan state lives
in ``DATA_DIR/uploads-state.json`` (written atomically), keyed by path, so the check works
across scheduled flow runs without moving or renaming anything in the user's inbox. Files the
database already knows under that path with the same size are not returned again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from tasks.library_files import is_sidecar, looks_like_video


def _snapshot(inbox: Path) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for root, dirs, files in os.walk(inbox, followlinks=False):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.startswith(".") or is_sidecar(name):
                continue  # temp files of uploaders and our own atomic writes; prompt sidecars
            p = Path(root) / name
            try:
                st = p.stat()
            except OSError:
                continue
            out[str(p)] = [float(st.st_size), float(st.st_mtime_ns)]
    return out


def stable_files(inbox: Path, state_file: Path, stable_scans: int = 2,
                 already_known: Iterable[str] = ()) -> list[str]:
    """Paths whose (size, mtime) were identical in the last ``stable_scans`` scans."""
    state: dict[str, dict[str, object]] = {}
    if state_file.exists():
        try:
            state = json.loads(state_file.read_text())
        except (OSError, ValueError):
            state = {}
    known = set(already_known)
    now = _snapshot(inbox)
    new_state: dict[str, dict[str, object]] = {}
    ready: list[str] = []
    for path, facts in sorted(now.items()):
        prev = state.get(path)
        count = int(prev["count"]) + 1 if prev and prev.get("facts") == facts else 1
        new_state[path] = {"facts": facts, "count": count}
        if count >= stable_scans and path not in known and facts[0] > 0 and looks_like_video(Path(path)):
            ready.append(path)
    state_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = state_file.with_name(f".{state_file.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(new_state))
    os.replace(tmp, state_file)
    return ready
