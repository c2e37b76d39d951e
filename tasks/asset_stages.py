"""The per-asset stages as the flows see them: each one calls the plain media/model functions
and records its result in the provenance database, keyed on natural keys so reruns are no-ops.

Flows pass JSON-able dicts (paths, ids, hashes), never arrays or tensors. These are plain
functions; their Prefect tasks are declared in tasks/prefect_tasks.py, the bookkeeping around
them (runs, claims, failures) is tasks/runs.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from sqlalchemy import update

from sql.repository import (asset_status_rows, asset_windows_with_tracks, current_tracks,
                            find_asset_by_uri, get_asset, known_uris, link_run_asset,
                            record_asset_path, set_asset_status, upsert_asset,
                            upsert_mix, upsert_output, upsert_prompt, upsert_window)
from sql.schema import Track
from tasks import discovery
from tasks.asset_prompts import prompts_for_asset
from tasks.audio import decode_audio, has_audio_stream
from tasks.ingest import ingest_path
from tasks.library_fs import local_path
from tasks.media_paths import from_uri
from tasks.mix import OUTPUT_RATE, mix_to_files
from tasks.mux import mux_output
from tasks.policy import retry_db
from tasks.runs import as_settings, record_failure, session
from tasks.scenes import detect_shots
from tasks.scenes import plan_windows as windows_of
from tasks.uploads import stable_files


# ---------------------------------------------------------------- discovery
# In its own module, which loads no model code: a backfill with nothing to do stops there.
discover = discovery.discover


# ---------------------------------------------------------------- one asset
def ingest_asset(path: str, settings: Mapping[str, Any], run_id: int | None) -> dict[str, Any]:
    """Hash + probe + asset row; status ``running`` unless it is already ``done``."""
    facts = ingest_path(Path(from_uri(path)))
    with session(settings) as s:
        asset = upsert_asset(s, **facts.asset_fields())
        record_asset_path(s, asset["id"], path)
        if run_id is not None:
            link_run_asset(s, run_id, asset["id"])
        if asset["status"] != "done":
            set_asset_status(s, asset["id"], "running")
            asset["status"] = "running"
    asset["path"] = path
    asset["probe"] = facts.probe_dict()
    return asset


def plan_windows(asset: dict[str, Any], settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Shots → model windows, one ``scene_window`` row each."""
    s = as_settings(settings)
    shots = detect_shots(Path(from_uri(asset["path"])), min_shot_s=s.min_shot_s)
    windows = windows_of(shots, window_s=s.window_s, overlap_s=s.overlap_s)
    out = []
    with session(settings) as db:
        for w in windows:
            how = {"start_transition": w.start_transition, "end_transition": w.end_transition,
                   "start_transition_s": w.start_transition_s, "end_transition_s": w.end_transition_s}
            row = upsert_window(db, asset_id=asset["id"], shot_index=w.shot_index,
                               window_index=w.window_index, start_s=w.start_s, end_s=w.end_s,
                               shot_start_s=w.shot_start_s, shot_end_s=w.shot_end_s, **how)
            out.append({"window_id": row["id"], "scene_index": w.shot_index,
                        "window_index": w.window_index, "start_s": w.start_s, "end_s": w.end_s,
                        "shot_start_s": w.shot_start_s, "shot_end_s": w.shot_end_s, **how})
    return out


def propose_prompts(asset: dict[str, Any], windows: list[dict[str, Any]],
                    settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Prompts per shot (shared by its windows), recorded per window; returns generation jobs."""
    s = as_settings(settings)
    per_shot = prompts_for_asset(asset["path"], asset["sha256"], windows, s)
    jobs = []
    with session(settings) as db:
        for w in windows:
            proposal = per_shot[w["scene_index"]]
            captioner_id = str(proposal.captioner.get("model") or proposal.captioner.get("backend") or "")
            kept = []
            domain = {"captioner_ood_distance": proposal.domain.get("distance"),
                      "captioner_note": proposal.domain.get("note")}
            for p in proposal.prompts:
                row = upsert_prompt(db, window_id=w["window_id"], order=p.order, text=p.text,
                                    source=p.source, score=p.score, captioner_id=captioner_id, **domain)
                kept.append({"id": row["id"], "order": p.order, "text": p.text})
            for i, d in enumerate(proposal.dropped):
                if d.stage in ("same", "present", "limit", "replaced"):
                    upsert_prompt(db, window_id=w["window_id"], order=1000 + i, text=d.text,
                                  source="captioner", dropped=True, drop_reason=d.reason,
                                  captioner_id=captioner_id)
            jobs.append({**w, "asset_id": asset["id"], "asset_sha256": asset["sha256"],
                         "path": asset["path"], "prompts": kept})
    return jobs


def mix_asset(asset: dict[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """Current stems of every window on the asset timeline → mix file + per-track stems."""
    s = as_settings(settings)
    with session(settings) as db:
        windows = asset_windows_with_tracks(db, asset["id"])
    src = from_uri(asset["path"])
    original = decode_audio(src, 0.0, None, OUTPUT_RATE) if has_audio_stream(src) else None
    out_dir = s.work_dir / asset["sha256"][:16]
    result = mix_to_files(windows, out_dir, duration_s=float(asset["duration_s"]),
                          target_lufs=s.target_lufs, original=original)
    with session(settings) as db:
        for take in result.takes:
            if take["track_id"] is not None:
                db.execute(update(Track).where(Track.id == take["track_id"]).values(
                    loudness_lufs=take["loudness_lufs"], gain_db=take["gain_db"]))
        row = upsert_mix(db, asset_id=asset["id"], config_hash=result.content_hash,
                         uri=str(result.mix_path.resolve()), sha256=result.sha256,
                         loudness_lufs=result.loudness_lufs, true_peak_dbtp=result.true_peak_dbtp,
                         sample_rate=result.sample_rate, stems_json=result.stems)
    return {"id": row["id"], **result.to_json(), "has_original": original is not None,
            "scene_starts": _chapter_starts(windows)}


def _chapter_starts(windows: list[dict[str, Any]]) -> list[list[Any]]:
    """[shot start s, how the shot begins] per shot, for the output's chapter titles."""
    starts: dict[float, str] = {}
    for w in windows:
        t = w["shot_start_s"] if w.get("shot_start_s") is not None else w["start_s"]
        starts.setdefault(t, w.get("start_transition") or ("start" if t == 0 else "cut"))
    return [[t, kind] for t, kind in sorted(starts.items())]


def mux_asset(asset: dict[str, Any], mix: dict[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """The output video: picture copied, mix first, original and stems after."""
    s = as_settings(settings)
    result = mux_output(asset["path"], mix, s.output_dir, container=s.container,
                        name=_output_name(asset), has_original=bool(mix["has_original"]),
                        scene_starts=mix["scene_starts"], duration_s=float(asset["duration_s"]),
                        fps=float(asset.get("fps") or 25.0))
    with session(settings) as db:
        row = upsert_output(db, asset_id=asset["id"], mix_id=mix["id"], **result.output_fields())
    return {"id": row["id"], "uri": result.uri, "sha256": result.sha256,
            "sidecars": list(result.sidecars)}


def _output_name(asset: dict[str, Any]) -> str:
    stem = Path(from_uri(asset["path"])).stem
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)[:80] or "asset"
    return f"{safe}.{asset['sha256'][:8]}"


def finish_asset(asset: dict[str, Any], settings: Mapping[str, Any]) -> None:
    with session(settings) as db:
        set_asset_status(db, asset["id"], "done")


@retry_db
def fail_asset(path: str, err: BaseException, settings: Mapping[str, Any], run_id: int | None) -> None:
    """Record the failure against the asset (when it has a row) and mark it failed."""
    with session(settings) as db:
        asset = find_asset_by_uri(db, path)
        asset_id = asset["id"] if asset else None
        if asset_id is not None:
            set_asset_status(db, asset_id, "failed", error=f"{type(err).__name__}: {err}"[:2000])
    record_failure(settings, uri=path, stage=getattr(err, "stage", "process"), err=err,
                   run_id=run_id, asset_id=asset_id)


@retry_db
def asset_ref(asset_id: int, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The asset row with ``path``: where its content is read here (a remote URI's staged copy)."""
    with session(settings) as db:
        row = get_asset(db, asset_id)
    return {**row, "path": local_path(row["uri"], row["sha256"], as_settings(settings).data_dir)}


@retry_db
def asset_summary_by_path(path: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    with session(settings) as db:
        asset = find_asset_by_uri(db, path)
        if asset is None:
            return {"path": path, "status": "failed", "error": "not registered"}
        for row in asset_status_rows(db, asset_id=asset["id"]):
            return {**dict(row), "path": path}
    return {"path": path, "status": asset["status"]}


@retry_db
def asset_summary(asset_id: int, settings: Mapping[str, Any]) -> dict[str, Any]:
    with session(settings) as db:
        rows = [dict(r) for r in asset_status_rows(db, asset_id=asset_id)]
    return rows[0] if rows else {"asset_id": asset_id, "status": "unknown"}


@retry_db
def window_tracks(window_id: int, settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    with session(settings) as db:
        return current_tracks(db, window_id)


def stable_uploads(inbox: str, settings: Mapping[str, Any], stable_scans: int) -> list[str]:
    s = as_settings(settings)
    with session(settings) as db:
        known = known_uris(db, prefix=str(Path(inbox)))
    return stable_files(Path(inbox), s.data_dir / "uploads-state.json", stable_scans, known)
