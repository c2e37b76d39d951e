"""Repository functions: each takes a Session, upserts on a natural key, returns plain dicts.

Upserts are single ``INSERT … ON CONFLICT (natural key) DO UPDATE`` statements on both SQLite
and PostgreSQL, so running one twice (or from two processes at once) leaves one row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable, Sequence

from sqlalchemy import Select, Table, and_, distinct, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from sql import rollups
from sql.schema import Asset, AssetPath, Failure, Mix, ModelBundle, Output, Prompt, Run, RunAsset, \
    SceneWindow, Track, utcnow

ASSET_STATUSES = ("pending", "running", "done", "failed")
TRACK_STATUSES = ("current", "rejected", "deleted", "superseded")


def _row(obj: Any) -> dict[str, Any] | None:
    if obj is None:
        return None
    return {c.key: getattr(obj, c.key) for c in obj.__table__.columns}


def _upsert(session: Session, model: type, keys: Sequence[str], values: dict[str, Any],
            update_cols: Iterable[str] | None = None) -> dict[str, Any]:
    table: Table = model.__table__  # type: ignore[attr-defined]
    known = {c.key for c in table.columns}
    unknown = set(values) - known
    if unknown:
        raise TypeError(f"{table.name} has no column(s) {sorted(unknown)}")
    # Only what the caller passed is updated on conflict; defaults apply to new rows only.
    cols = [c for c in (update_cols if update_cols is not None else list(values)) if c not in keys]
    for col in table.columns:  # python-side defaults: the Core insert does not apply ORM ones
        if col.key not in values and col.default is not None and not col.primary_key:
            arg = col.default.arg  # type: ignore[union-attr]
            values[col.key] = arg(None) if callable(arg) else arg
    dialect = session.get_bind().dialect.name
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table).values(**values)
    if "updated_at" in known and "updated_at" not in cols:
        values["updated_at"] = utcnow()
        ins = ins.values(updated_at=values["updated_at"])
        cols.append("updated_at")
    if cols:
        stmt = ins.on_conflict_do_update(index_elements=list(keys),
                                         set_={c: ins.excluded[c] for c in cols})
    else:
        stmt = ins.on_conflict_do_nothing(index_elements=list(keys))
    session.execute(stmt)
    obj = session.execute(select(model).where(and_(*[getattr(model, k) == values[k] for k in keys]))
                          ).scalar_one()
    session.refresh(obj)
    return _row(obj)  # type: ignore[return-value]


# ------------------------------------------------------------------ assets
def upsert_asset(session: Session, *, sha256: str, uri: str, **facts: Any) -> dict[str, Any]:
    """Asset by content hash; probe facts and the latest location update, status only if given."""
    values = {"sha256": sha256, "uri": uri, **facts}
    return _upsert(session, Asset, ["sha256"], values)


def record_asset_path(session: Session, asset_id: int, uri: str) -> dict[str, Any]:
    return _upsert(session, AssetPath, ["uri"], {"asset_id": asset_id, "uri": uri,
                                                  "last_seen_at": utcnow()})


def set_asset_status(session: Session, asset_id: int, status: str, error: str | None = None) -> None:
    if status not in ASSET_STATUSES:
        raise ValueError(f"asset status must be one of {ASSET_STATUSES}")
    values: dict[str, Any] = {"status": status, "error": error, "updated_at": utcnow()}
    if status == "running":
        values["started_at"] = utcnow()
        values["finished_at"] = None
    elif status in ("done", "failed"):
        values["finished_at"] = utcnow()
    session.execute(update(Asset).where(Asset.id == asset_id).values(**values))


def get_asset(session: Session, asset_id: int) -> dict[str, Any] | None:
    return _row(session.get(Asset, asset_id))


def find_asset(session: Session, ref: str | int) -> dict[str, Any] | None:
    """By numeric id, or by a sha256 prefix that names exactly one asset."""
    ref = str(ref).strip()
    if ref.isdigit():
        row = get_asset(session, int(ref))
        if row:
            return row
    if len(ref) >= 6 and all(c in "0123456789abcdef" for c in ref.lower()):
        rows = session.execute(select(Asset).where(Asset.sha256.like(ref.lower() + "%")).limit(2)
                               ).scalars().all()
        if len(rows) == 1:
            return _row(rows[0])
    return None


def find_asset_by_uri(session: Session, uri: str) -> dict[str, Any] | None:
    q = select(Asset).join(AssetPath, AssetPath.asset_id == Asset.id).where(AssetPath.uri == uri)
    row = session.execute(q).scalar_one_or_none()
    if row is None:
        row = session.execute(select(Asset).where(Asset.uri == uri).limit(1)).scalar_one_or_none()
    return _row(row)


def known_uris(session: Session, prefix: str = "") -> set[str]:
    q = select(AssetPath.uri).join(Asset, Asset.id == AssetPath.asset_id).where(
        Asset.status.in_(("done", "failed", "running")))
    if prefix:
        q = q.where(AssetPath.uri.like(prefix.replace("%", r"\%") + "%", escape="\\"))
    return set(session.execute(q).scalars())


def list_assets(session: Session, status: str | None = None, library: str | None = None,
                since: datetime | None = None, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
    q = select(Asset).order_by(Asset.id.desc())
    if status:
        q = q.where(Asset.status == status)
    if library:
        q = q.where(Asset.library == library)
    if since:
        q = q.where(Asset.updated_at >= since)
    return [_row(a) for a in session.execute(q.limit(limit).offset(offset)).scalars()]  # type: ignore[misc]


def count_assets(session: Session, status: str | None = None, library: str | None = None,
                 since: datetime | None = None) -> int:
    q = select(func.count(Asset.id))
    if status:
        q = q.where(Asset.status == status)
    if library:
        q = q.where(Asset.library == library)
    if since:
        q = q.where(Asset.updated_at >= since)
    return int(session.execute(q).scalar_one())


# ------------------------------------------------------------------ windows, prompts, tracks
def upsert_window(session: Session, *, asset_id: int, shot_index: int, window_index: int,
                  start_s: float, end_s: float, shot_start_s: float | None = None,
                  shot_end_s: float | None = None, **transitions: Any) -> dict[str, Any]:
    """One model window of a shot. ``transitions``: start_transition, end_transition, start_transition_s, end_transition_s."""
    row = _upsert(session, SceneWindow, ["asset_id", "shot_index", "window_index"],
                  {"asset_id": asset_id, "shot_index": shot_index, "window_index": window_index,
                   "start_s": start_s, "end_s": end_s, "shot_start_s": shot_start_s,
                   "shot_end_s": shot_end_s, **transitions})
    rollups.refresh_asset(session, asset_id)
    return row


def shot_windows(session: Session, asset_id: int, shot_index: int) -> list[dict[str, Any]]:
    q = (select(SceneWindow).where(SceneWindow.asset_id == asset_id, SceneWindow.shot_index == shot_index)
         .order_by(SceneWindow.window_index))
    return [_row(s) for s in session.execute(q).scalars()]  # type: ignore[misc]


def upsert_prompt(session: Session, *, window_id: int, order: int, text: str, source: str = "captioner",
                  score: float | None = None, dropped: bool = False, drop_reason: str | None = None,
                  captioner_id: str | None = None, captioner_ood_distance: float | None = None,
                  captioner_note: str | None = None) -> dict[str, Any]:
    if source not in ("captioner", "user"):
        raise ValueError("prompt source must be captioner or user")
    return _upsert(session, Prompt, ["window_id", "order", "text"],
                   {"window_id": window_id, "order": order, "text": text, "source": source,
                    "score": score, "dropped": dropped, "drop_reason": drop_reason,
                    "captioner_id": captioner_id, "captioner_ood_distance": captioner_ood_distance,
                    "captioner_note": captioner_note})


def captioner_notes(session: Session, asset_ids: list[int] | Select[Any]) -> dict[int, str]:
    """Per asset (a list of ids or a query of them), the note on who made its prompts when that
    captioner does not know the footage (first window that has one)."""
    if isinstance(asset_ids, list) and not asset_ids:
        return {}
    q = (select(SceneWindow.asset_id, Prompt.captioner_note).join(Prompt, Prompt.window_id == SceneWindow.id)
         .where(SceneWindow.asset_id.in_(asset_ids), Prompt.captioner_note.is_not(None))
         .order_by(SceneWindow.asset_id, SceneWindow.shot_index, Prompt.order))
    out: dict[int, str] = {}
    for aid, note in session.execute(q):
        out.setdefault(int(aid), str(note))
    return out


def upsert_track(session: Session, **values: Any) -> int:
    """Track by (window, order, version); returns its id."""
    values.pop("id", None)
    if values.get("status", "current") not in TRACK_STATUSES:
        raise ValueError(f"track status must be one of {TRACK_STATUSES}")
    # the rollup cells this write may leave: the take's old day/device when it is rewritten
    old = session.execute(select(Track.finished_at, Track.device).where(
        Track.window_id == values.get("window_id"), Track.order == values.get("order"),
        Track.version == values.get("version", 1))).one_or_none()
    row = _upsert(session, Track, ["window_id", "order", "version"], values)
    _refresh_for_window(session, row["window_id"])
    cells = {(row["finished_at"], row["device"])} | ({(old.finished_at, old.device)} if old else set())
    for finished_at, device in sorted(cells, key=lambda c: (str(c[0]), str(c[1]))):
        rollups.refresh_generation_day(session, finished_at, device)
    return int(row["id"])


def _refresh_for_window(session: Session, window_id: int) -> None:
    asset_id = session.execute(select(SceneWindow.asset_id).where(SceneWindow.id == window_id)).scalar_one()
    rollups.refresh_asset(session, asset_id)


def current_tracks(session: Session, window_id: int) -> list[dict[str, Any]]:
    q = select(Track).where(Track.window_id == window_id, Track.status == "current").order_by(Track.order)
    return [_row(t) for t in session.execute(q).scalars()]  # type: ignore[misc]


def track_history(session: Session, window_id: int) -> list[dict[str, Any]]:
    q = select(Track).where(Track.window_id == window_id).order_by(Track.order, Track.version)
    return [_row(t) for t in session.execute(q).scalars()]  # type: ignore[misc]


def next_track_version(session: Session, window_id: int, order: int) -> int:
    q = select(func.max(Track.version)).where(Track.window_id == window_id, Track.order == order)
    return int(session.execute(q).scalar_one() or 0) + 1


def set_track_status(session: Session, track_id: int, status: str) -> None:
    if status not in TRACK_STATUSES:
        raise ValueError(f"track status must be one of {TRACK_STATUSES}")
    session.execute(update(Track).where(Track.id == track_id).values(status=status))
    window_id = session.execute(select(Track.window_id).where(Track.id == track_id)).scalar_one_or_none()
    if window_id is not None:
        _refresh_for_window(session, window_id)


def asset_windows_with_tracks(session: Session, asset_id: int) -> list[dict[str, Any]]:
    """Every window of the asset in time order, with its current tracks (the mix's input)."""
    windows = session.execute(select(SceneWindow).where(SceneWindow.asset_id == asset_id)
                              .order_by(SceneWindow.start_s, SceneWindow.shot_index,
                                        SceneWindow.window_index)).scalars().all()
    out = []
    for sc in windows:
        row = _row(sc)
        row["tracks"] = current_tracks(session, sc.id)  # type: ignore[index]
        out.append(row)
    return out  # type: ignore[return-value]


# ------------------------------------------------------------------ mix, output
def upsert_mix(session: Session, *, asset_id: int, config_hash: str, uri: str, sha256: str,
               loudness_lufs: float | None = None, true_peak_dbtp: float | None = None,
               sample_rate: int | None = None, stems_json: Any = None) -> dict[str, Any]:
    return _upsert(session, Mix, ["asset_id", "config_hash"],
                   {"asset_id": asset_id, "config_hash": config_hash, "uri": uri, "sha256": sha256,
                    "loudness_lufs": loudness_lufs, "true_peak_dbtp": true_peak_dbtp,
                    "sample_rate": sample_rate, "stems_json": stems_json, "created_at": utcnow()})


def upsert_output(session: Session, *, asset_id: int, uri: str, sha256: str, mix_id: int | None = None,
                  **facts: Any) -> dict[str, Any]:
    return _upsert(session, Output, ["asset_id", "uri"],
                   {"asset_id": asset_id, "uri": uri, "sha256": sha256, "mix_id": mix_id,
                    "created_at": utcnow(), **facts})


def latest_output(session: Session, asset_id: int) -> dict[str, Any] | None:
    q = select(Output).where(Output.asset_id == asset_id).order_by(Output.created_at.desc(), Output.id.desc())
    return _row(session.execute(q.limit(1)).scalar_one_or_none())


def latest_mix(session: Session, asset_id: int) -> dict[str, Any] | None:
    q = select(Mix).where(Mix.asset_id == asset_id).order_by(Mix.created_at.desc(), Mix.id.desc())
    return _row(session.execute(q.limit(1)).scalar_one_or_none())


# ------------------------------------------------------------------ runs and failures
def start_run(session: Session, *, kind: str, parameters: dict[str, Any] | None = None,
              prefect_flow_run_id: str | None = None) -> int:
    run = Run(kind=kind, parameters=parameters, prefect_flow_run_id=prefect_flow_run_id,
              status="running", started_at=utcnow())
    session.add(run)
    session.flush()
    return int(run.id)


def set_run_flow_run_id(session: Session, run_id: int, flow_run_id: str) -> None:
    session.execute(update(Run).where(Run.id == run_id).values(prefect_flow_run_id=flow_run_id))


def finish_run(session: Session, run_id: int, *, counts: dict[str, Any], status: str) -> None:
    session.execute(update(Run).where(Run.id == run_id).values(counts=counts, status=status,
                                                                finished_at=utcnow()))


def link_run_asset(session: Session, run_id: int, asset_id: int) -> None:
    _upsert(session, RunAsset, ["run_id", "asset_id"], {"run_id": run_id, "asset_id": asset_id})


def record_failure(session: Session, *, stage: str, error_class: str, message: str,
                   run_id: int | None = None, asset_id: int | None = None, window_id: int | None = None,
                   track_id: int | None = None, uri: str | None = None,
                   traceback_digest: str | None = None) -> int:
    """One row per (run, uri, stage, digest): a retried step does not duplicate its failure."""
    q = select(Failure.id).where(
        Failure.run_id.is_(None) if run_id is None else Failure.run_id == run_id,
        Failure.uri.is_(None) if uri is None else Failure.uri == uri,
        Failure.stage == stage, Failure.traceback_digest == traceback_digest)
    existing = session.execute(q.limit(1)).scalar_one_or_none()
    if existing is not None:
        return int(existing)
    f = Failure(run_id=run_id, asset_id=asset_id, window_id=window_id, track_id=track_id, uri=uri,
                stage=stage, error_class=error_class, message=message,
                traceback_digest=traceback_digest, created_at=utcnow())
    session.add(f)
    session.flush()
    return int(f.id)


def list_failures(session: Session, limit: int = 50, offset: int = 0,
                  asset_id: int | None = None) -> list[dict[str, Any]]:
    q = select(Failure).order_by(Failure.created_at.desc(), Failure.id.desc())
    if asset_id is not None:
        q = q.where(Failure.asset_id == asset_id)
    return [_row(f) for f in session.execute(q.limit(limit).offset(offset)).scalars()]  # type: ignore[misc]


# ------------------------------------------------------------------ read models
def _asset_counts(session: Session, ids: Select[Any] | list[int],
                  asset_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Shots, windows, current tracks and their wall seconds of the assets ``ids`` names."""
    out: dict[int, dict[str, Any]] = {i: {"scenes": 0, "windows": 0, "tracks": 0, "wall_s": 0.0}
                                      for i in asset_ids}
    if not asset_ids:
        return out
    q = (select(SceneWindow.asset_id, func.count(distinct(SceneWindow.shot_index)), func.count(SceneWindow.id))
         .where(SceneWindow.asset_id.in_(ids)).group_by(SceneWindow.asset_id))
    for aid, shots, windows in session.execute(q):
        out[aid].update(scenes=int(shots), windows=int(windows))
    q = (select(SceneWindow.asset_id, func.count(Track.id), func.coalesce(func.sum(Track.wall_s), 0.0))
         .join(Track, Track.window_id == SceneWindow.id)
         .where(SceneWindow.asset_id.in_(ids), Track.status == "current").group_by(SceneWindow.asset_id))
    for aid, tracks, wall in session.execute(q):
        out[aid].update(tracks=int(tracks), wall_s=float(wall))
    return out


def _latest_outputs(session: Session, ids: Select[Any] | list[int]) -> dict[int, str]:
    """The latest output URI of each asset ``ids`` names (one query, not one per asset)."""
    q = (select(Output.asset_id, Output.uri).where(Output.asset_id.in_(ids))
         .order_by(Output.asset_id, Output.created_at.desc(), Output.id.desc()))
    out: dict[int, str] = {}
    for aid, uri in session.execute(q):
        out.setdefault(int(aid), str(uri))
    return out


def _status_query(asset_id: int | None, status: str | None) -> Select[Any]:
    q = select(Asset.id)
    if asset_id is not None:
        q = q.where(Asset.id == asset_id)
    if status is not None:
        q = q.where(Asset.status == status)
    return q


def count_status_rows(session: Session, status: str | None = None) -> int:
    """How many rows ``asset_status_rows`` has with this filter and no limit."""
    return int(session.execute(select(func.count()).select_from(_status_query(None, status).subquery()))
               .scalar_one())


def asset_status_rows(session: Session, asset_id: int | None = None, status: str | None = None,
                      limit: int | None = None, offset: int = 0) -> list[dict[str, Any]]:
    """For `stepfoley status`: path, sha256, status, error, scenes, tracks, output, timings;
    by asset id, one page (``limit``/``offset``, through the (status, id) index) when given."""
    ids = _status_query(asset_id, status).order_by(Asset.id).offset(offset)
    if limit is not None:
        ids = ids.limit(limit)
    page = ids.subquery()
    assets = session.execute(select(Asset).where(Asset.id.in_(select(page.c.id))).order_by(Asset.id)
                             ).scalars().all()
    # a page's ids as bound values (SQLite then probes its indexes per id); a whole archive's
    # as a subquery (more ids than one statement may bind)
    listed = [a.id for a in assets]
    in_page: Select[Any] | list[int] = listed if len(listed) <= 1000 else select(page.c.id)
    counts = _asset_counts(session, in_page, listed)
    notes = captioner_notes(session, in_page) if assets else {}
    outputs = _latest_outputs(session, in_page) if assets else {}
    rows = []
    for a in assets:
        took = (a.finished_at - a.started_at).total_seconds() if a.finished_at and a.started_at else None
        rows.append({"id": a.id, "path": a.uri, "sha256": a.sha256, "status": a.status,
                     "error": a.error, **counts[a.id], "output": outputs.get(a.id),
                     "duration_s": a.duration_s, "started_at": a.started_at,
                     "finished_at": a.finished_at, "elapsed_s": took, "prompts_note": notes.get(a.id)})
    return rows


def run_asset_rows(session: Session, run_id: int) -> list[dict[str, Any]]:
    ids = list(session.execute(select(RunAsset.asset_id).where(RunAsset.run_id == run_id)
                               .order_by(RunAsset.id)).scalars())
    rows = []
    for aid in ids:
        rows.extend(asset_status_rows(session, aid))
    seen = {r["path"] for r in rows}
    for f in session.execute(select(Failure).where(Failure.run_id == run_id, Failure.asset_id.is_(None))
                             .order_by(Failure.id)).scalars():
        if f.uri not in seen:
            seen.add(f.uri)
            rows.append({"id": None, "path": f.uri, "sha256": None, "status": "failed",
                         "error": f.message, "scenes": 0, "windows": 0, "tracks": 0, "wall_s": 0.0,
                         "output": None, "started_at": None, "finished_at": None, "elapsed_s": None})
    return rows


def run_progress(session: Session, run_id: int) -> dict[str, tuple[int, int | None]]:
    """(done, total) of assets, windows and tracks for a run's progress bars."""
    ids = list(session.execute(select(RunAsset.asset_id).where(RunAsset.run_id == run_id)).scalars())
    if not ids:
        return {"assets": (0, None), "windows": (0, None), "tracks": (0, None)}
    finished = session.execute(select(func.count(Asset.id)).where(
        Asset.id.in_(ids), Asset.status.in_(("done", "failed")))).scalar_one()
    windows = session.execute(select(func.count(SceneWindow.id)).where(SceneWindow.asset_id.in_(ids))).scalar_one()
    windows_done = session.execute(
        select(func.count(distinct(SceneWindow.id))).join(Track, Track.window_id == SceneWindow.id)
        .where(SceneWindow.asset_id.in_(ids))).scalar_one()
    planned = session.execute(
        select(func.count(Prompt.id)).join(SceneWindow, SceneWindow.id == Prompt.window_id)
        .where(SceneWindow.asset_id.in_(ids), Prompt.dropped.is_(False))).scalar_one()
    tracks = session.execute(
        select(func.count(Track.id)).join(SceneWindow, SceneWindow.id == Track.window_id)
        .where(SceneWindow.asset_id.in_(ids), Track.status == "current")).scalar_one()
    return {"assets": (int(finished), len(ids)), "windows": (int(windows_done), int(windows) or None),
            "tracks": (int(tracks), int(planned) or None)}


def asset_detail(session: Session, asset_id: int) -> dict[str, Any] | None:
    """Asset → windows → prompts and tracks (all versions), plus mix, output and failures."""
    asset = get_asset(session, asset_id)
    if asset is None:
        return None
    windows = []
    for sc in session.execute(select(SceneWindow).where(SceneWindow.asset_id == asset_id)
                              .order_by(SceneWindow.shot_index, SceneWindow.window_index)).scalars():
        w = _row(sc)
        w["prompts"] = [_row(p) for p in session.execute(  # type: ignore[index]
            select(Prompt).where(Prompt.window_id == sc.id).order_by(Prompt.order)).scalars()]
        w["tracks"] = track_history(session, sc.id)  # type: ignore[index]
        windows.append(w)
    asset["windows"] = windows
    asset["mix"] = latest_mix(session, asset_id)
    asset["output"] = latest_output(session, asset_id)
    asset["failures"] = list_failures(session, limit=20, asset_id=asset_id)
    asset["paths"] = list(session.execute(select(AssetPath.uri).where(AssetPath.asset_id == asset_id)).scalars())
    # Which files, with which hashes, made its tracks: the bundles they name.
    asset["bundles"] = model_bundles(session, sorted({t["bundle_id"] for w in windows for t in w["tracks"]}))
    return asset


def status_counts(session: Session) -> dict[str, int]:
    q = select(Asset.status, func.count(Asset.id)).group_by(Asset.status)
    counts = {s: 0 for s in ASSET_STATUSES}
    counts.update({s: int(n) for s, n in session.execute(q)})
    return counts


# ------------------------------------------------------------------ model bundles
def record_model_bundle(session: Session, *, bundle_id: str, content_sha256: str, weights_sha256: str,
                        files: dict[str, str], path: str | None = None) -> dict[str, Any]:
    """The provenance row of a bundle (upsert on its id; the path is where it was last loaded)."""
    return _upsert(session, ModelBundle, ["bundle_id"],
                   {"bundle_id": bundle_id, "content_sha256": content_sha256,
                    "weights_sha256": weights_sha256, "files": dict(files), "path": path},
                   update_cols=["path"])


def model_bundles(session: Session, bundle_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The provenance rows of these bundle ids (those recorded), by id."""
    if not bundle_ids:
        return []
    rows = session.execute(select(ModelBundle).where(ModelBundle.bundle_id.in_(list(bundle_ids)))
                           .order_by(ModelBundle.bundle_id)).scalars()
    return [_row(r) for r in rows]  # type: ignore[misc]
