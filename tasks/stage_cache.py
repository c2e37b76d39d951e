"""Prefect cache policy of the expensive stages: a rerun skips the work that is already done.

Key of a stage run = sha256 over

    stage name · CACHE_VERSION · the stage function's source · asset content sha256
    · Settings.generation_hash() (the config hash) · the database (URL, asset row id and
      creation time: a new database never sees another one's rows) · the stage's own inputs
      that change its result (below)

    scenes           —
    prompts          the windows; bundle content (captioner, scorer); prompts CSV, sidecar
                     and prompts mode
    generate-window  the job (window times, prompt ids and texts); bundle weights
    mix              the asset's current takes (track id, version, stem sha256) read from
                     the database: a regenerated or deleted take is a different mix
    mux              the mix (id, sha256); container, output directory (the asset's path,
                     which names the output, is in every key)

The result record (Prefect's JSON result file, a few kB: ids, paths and hashes, never audio)
lives at ``DATA_DIR/cache/<stage>/<key>`` (the key is that absolute path), written through a
``LocalFileSystem`` result storage rooted at ``/``, so caching needs no Prefect server and
follows the data directory wherever the stage runs. Before the key is handed to Prefect, the
record it names is checked: every file the result names must still exist with the recorded
sha256, and the database rows it names must still be there (a take still ``current``); a
stale record is deleted, so the stage runs again.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from prefect.cache_policies import NO_CACHE, CachePolicy
from prefect.results import ResultRecord
from sqlalchemy import func, select

from sql.schema import Mix, Output, Prompt, SceneWindow, Track
from tasks.bundle_identity import cached_bundle_identity
from tasks.config import Settings
from tasks.database import redact
from tasks.ingest import sha256_file
from tasks.media_paths import from_uri
from tasks.shot_prompts import sidecar_path
from tasks.runs import as_settings, session

log = logging.getLogger("stepfoley.cache")

# Bump when a stage's result changes meaning without its source changing.
CACHE_VERSION = "2"  # 2: window rows are ``window_id`` (were ``scene_id``)

# Keys are absolute paths under the settings' data directory (see the module docstring); Prefect
# turns a Path into a LocalFileSystem rooted there (an unsaved block is refused at decoration).
RESULT_STORAGE = Path("/")


def cache_dir(settings: Settings) -> Path:
    return settings.data_dir.resolve() / "cache"


# ------------------------------------------------------------------ file facts
@functools.lru_cache(maxsize=256)
def _sha_by_stat(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(Path(path))


def file_sha256(path: str | Path) -> str | None:
    """The file's sha256 (memoised on size + mtime), or None when it does not exist."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return None
    if not p.is_file():
        return None
    return _sha_by_stat(str(p.resolve()), st.st_size, st.st_mtime_ns)


def bundle_hashes(settings: Settings) -> dict[str, str]:
    """Content and weights sha256 of the settings' bundle (re-hashed only when files change)."""
    ident = cached_bundle_identity(settings.bundle)
    return {"content": ident["content_sha256"], "weights": ident["weights_sha256"]}


@functools.lru_cache(maxsize=64)
def _source_sha(fn: Callable[..., Any]) -> str:
    try:
        src = inspect.getsource(fn)
    except (OSError, TypeError):
        src = getattr(getattr(fn, "__code__", None), "co_code", b"").hex()
    return hashlib.sha256(src.encode()).hexdigest()[:16]


# ------------------------------------------------------------------ per-stage key parts
def _asset_part(asset: Mapping[str, Any]) -> dict[str, Any]:
    return {"sha256": asset["sha256"], "id": asset["id"], "created_at": str(asset.get("created_at")),
            "path": asset.get("path") or asset.get("uri")}


def _scenes_key(inputs: Mapping[str, Any], s: Settings) -> dict[str, Any]:
    return {"asset": _asset_part(inputs["asset"])}


def _prompts_key(inputs: Mapping[str, Any], s: Settings) -> dict[str, Any]:
    asset = inputs["asset"]
    side = sidecar_path(from_uri(asset["path"]))
    return {"asset": _asset_part(asset), "windows": inputs["windows"],
            "bundle": bundle_hashes(s)["content"],
            "csv": file_sha256(s.prompts_csv) if s.prompts_csv else None,
            "sidecar": file_sha256(side) if side else None, "prompts_mode": s.prompts_mode}


def _generate_key(inputs: Mapping[str, Any], s: Settings) -> dict[str, Any]:
    job = dict(inputs["job"])
    return {"job": job, "asset": {"sha256": job["asset_sha256"], "id": job["asset_id"]},
            "weights": bundle_hashes(s)["weights"]}


def _mix_key(inputs: Mapping[str, Any], s: Settings) -> dict[str, Any]:
    asset = inputs["asset"]
    with session(s) as db:
        takes = db.execute(
            select(Track.id, Track.window_id, Track.order, Track.version, Track.stem_sha256)
            .join(SceneWindow, SceneWindow.id == Track.window_id)
            .where(SceneWindow.asset_id == asset["id"], Track.status == "current")
            .order_by(Track.id)).all()
    return {"asset": _asset_part(asset), "takes": [list(t) for t in takes]}


def _mux_key(inputs: Mapping[str, Any], s: Settings) -> dict[str, Any]:
    mix = inputs["mix"]
    return {"asset": _asset_part(inputs["asset"]), "mix": [mix.get("id"), mix.get("sha256")],
            "container": s.container, "out": str(s.output_dir.resolve())}


# ------------------------------------------------------------------ validation
def _files_ok(pairs: list[tuple[str | None, str | None]]) -> bool:
    """Every named file exists (and has the recorded sha256 when one was recorded)."""
    for path, sha in pairs:
        if not path:
            return False
        actual = file_sha256(path)
        if actual is None or (sha and actual != sha):
            return False
    return True


def _count(s: Settings, model: Any, ids: list[int], *extra: Any) -> int:
    if not ids:
        return 0
    with session(s) as db:
        return int(db.execute(select(func.count()).select_from(model)
                              .where(model.id.in_(ids), *extra)).scalar_one())


def _scenes_valid(result: Any, inputs: Mapping[str, Any], s: Settings) -> bool:
    ids = sorted({int(w["window_id"]) for w in result})
    return _count(s, SceneWindow, ids, SceneWindow.asset_id == inputs["asset"]["id"]) == len(ids)


def _prompts_valid(result: Any, inputs: Mapping[str, Any], s: Settings) -> bool:
    ids = sorted({int(p["id"]) for job in result for p in job["prompts"]})
    return not ids or _count(s, Prompt, ids) == len(ids)


def _generate_valid(result: Any, inputs: Mapping[str, Any], s: Settings) -> bool:
    if not _files_ok([(t.get("stem_uri"), t.get("stem_sha256")) for t in result]):
        return False
    ids = [int(t["id"]) for t in result]
    want = {int(t["id"]): t["stem_sha256"] for t in result}
    with session(s) as db:
        rows = db.execute(select(Track.id, Track.stem_sha256).where(
            Track.id.in_(ids), Track.status == "current")).all()
    return {r.id: r.stem_sha256 for r in rows} == want


def _mix_valid(result: Any, inputs: Mapping[str, Any], s: Settings) -> bool:
    files = [(result.get("mix_path"), result.get("sha256"))]
    files += [(st.get("path"), st.get("sha256")) for st in result.get("stems") or []]
    return _files_ok(files) and _count(s, Mix, [int(result["id"])],
                                       Mix.sha256 == result["sha256"]) == 1


def _mux_valid(result: Any, inputs: Mapping[str, Any], s: Settings) -> bool:
    files = [(result.get("uri"), result.get("sha256"))]
    files += [(p, None) for p in result.get("sidecars") or []]
    return _files_ok(files) and _count(s, Output, [int(result["id"])],
                                       Output.sha256 == result["sha256"]) == 1


_STAGES: dict[str, tuple[Callable[[Mapping[str, Any], Settings], dict[str, Any]],
                         Callable[[Any, Mapping[str, Any], Settings], bool]]] = {
    "scenes": (_scenes_key, _scenes_valid),
    "prompts": (_prompts_key, _prompts_valid),
    "generate-window": (_generate_key, _generate_valid),
    "mix": (_mix_key, _mix_valid),
    "mux": (_mux_key, _mux_valid),
}


def read_cached(path: Path) -> Any:
    """The result a cache record holds (raises when the record is unreadable)."""
    return ResultRecord.deserialize(path.read_bytes()).result


# ------------------------------------------------------------------ the policy
@dataclass
class StageCache(CachePolicy):
    """Cache key of one stepfoley stage (see the module docstring). The task's parameters must
    include ``settings``; everything else the key needs is named per stage in ``_STAGES``."""

    stage: str = ""

    def compute_key(self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any],
                    **kwargs: Any) -> str | None:
        if self.stage not in _STAGES or not inputs.get("settings"):
            return None
        s = as_settings(inputs["settings"])
        key_part, valid = _STAGES[self.stage]
        fn = getattr(getattr(task_ctx, "task", None), "fn", None)
        blob = json.dumps({"stage": self.stage, "version": CACHE_VERSION,
                           "code": _source_sha(fn) if fn is not None else None,
                           "config": s.generation_hash(), "db": redact(s.db_url),
                           **key_part(inputs, s)}, sort_keys=True, default=str)
        path = cache_dir(s) / self.stage / hashlib.sha256(blob.encode()).hexdigest()
        if path.exists():
            try:
                fresh = bool(valid(read_cached(path), inputs, s))
            except Exception as exc:  # unreadable or of an older shape: not to be trusted
                log.debug("cache record %s unusable: %s", path, exc)
                fresh = False
            if not fresh:
                log.info("%s: cached result names files or rows that are gone; recomputing",
                         self.stage)
                path.unlink(missing_ok=True)
        return str(path)


def cached_stage(stage: str) -> dict[str, Any]:
    """Task options of a cached stage: the policy, persisted JSON results in the data dir."""
    return {"cache_policy": StageCache(stage=stage), "persist_result": True,
            "result_storage": RESULT_STORAGE, "result_serializer": "json"}


# Task options of a stage that reads or writes the world as it is now (the library, the asset
# row): never cached.
NOT_CACHED: dict[str, Any] = {"cache_policy": NO_CACHE}
