"""Pre-aggregated counts, so the dashboard's views cost what the archive's *pages* cost, not
what its million tracks cost.

Two rollups, each a pure function of the rows it summarises:

    asset.n_shots, n_windows, n_tracks, n_current_tracks, model_seconds
        = COUNT(DISTINCT shot_index), COUNT(windows), COUNT(tracks), COUNT(current tracks),
          SUM(wall_s) over the asset's windows and their tracks
    generation_daily[day, device] = (COUNT(tracks), SUM(wall_s))
        over the tracks whose finished_at falls on that UTC day, with that device ('' = none)

They are kept exact by *recounting*, never by incrementing: a write of a window or a track
recounts the rollup rows it touches (a handful of rows through the indexes). A recount takes
the rollup row's lock first (SELECT … FOR UPDATE on PostgreSQL; SQLite has one writer) and
counts in a later statement, so under READ COMMITTED it sees every write committed before it
took the lock; a write committed later recounts again after it. Two GPU agents finishing
tracks of one asset at once therefore both leave the exact count, whichever commits last,
where increments would have to know whether an upsert inserted or updated. ``rebuild_all``
recounts everything (after a bulk load, or as a repair).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import and_, delete, distinct, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from sql.schema import Asset, GenerationDaily, SceneWindow, Track


def utc_day(when: datetime) -> date:
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).astimezone(timezone.utc).date()


def refresh_asset(session: Session, asset_id: int) -> None:
    """Recount the asset's rollup columns (module docstring)."""
    session.execute(select(Asset.id).where(Asset.id == asset_id).with_for_update())
    windows = select(SceneWindow.id).where(SceneWindow.asset_id == asset_id)
    tracks = select(Track).where(Track.window_id.in_(windows))
    session.execute(
        update(Asset).where(Asset.id == asset_id).values(
            n_shots=select(func.count(distinct(SceneWindow.shot_index)))
            .where(SceneWindow.asset_id == asset_id).scalar_subquery(),
            n_windows=select(func.count()).select_from(windows.subquery()).scalar_subquery(),
            n_tracks=select(func.count()).select_from(tracks.subquery()).scalar_subquery(),
            n_current_tracks=select(func.count()).select_from(
                tracks.where(Track.status == "current").subquery()).scalar_subquery(),
            model_seconds=select(func.coalesce(func.sum(Track.wall_s), 0.0))
            .where(Track.window_id.in_(windows)).scalar_subquery(),
            updated_at=Asset.updated_at)  # a recount is not an update of the asset
        .execution_options(synchronize_session=False))


def refresh_generation_day(session: Session, finished_at: datetime | None, device: str | None) -> None:
    """Recount the (UTC day of ``finished_at``, ``device``) cell of generation_daily."""
    if finished_at is None:
        return
    day, key = utc_day(finished_at), device or ""
    dialect = session.get_bind().dialect.name
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(GenerationDaily)
    session.execute(ins.values(day=day, device=key, tracks=0, model_seconds=0.0)
                    .on_conflict_do_nothing(index_elements=["day", "device"]))
    cell = and_(GenerationDaily.day == day, GenerationDaily.device == key)
    session.execute(select(GenerationDaily.day).where(cell).with_for_update())
    start = datetime.combine(day, time(), tzinfo=timezone.utc)
    n, seconds = session.execute(
        select(func.count(), func.coalesce(func.sum(Track.wall_s), 0.0)).where(
            Track.finished_at >= start, Track.finished_at < start + timedelta(days=1),
            func.coalesce(Track.device, "") == key)).one()
    if n:
        session.execute(update(GenerationDaily).where(cell).values(tracks=n, model_seconds=seconds))
    else:
        session.execute(delete(GenerationDaily).where(cell))


def _day_sql(conn: Connection) -> str:
    return ("CAST(finished_at AT TIME ZONE 'UTC' AS date)" if conn.dialect.name == "postgresql"
            else "date(finished_at)")


def rebuild_all(conn: Connection) -> None:
    """Recount every rollup from the rows (after a bulk load; as a repair). An asset without
    windows keeps NULL, as the write path leaves it."""
    conn.execute(text("UPDATE asset SET n_shots = NULL, n_windows = NULL, n_tracks = NULL, "
                      "n_current_tracks = NULL, model_seconds = NULL"))
    conn.execute(text("""
        UPDATE asset SET n_shots = w.shots, n_windows = w.windows,
          n_tracks = COALESCE(t.tracks, 0), n_current_tracks = COALESCE(t.current_tracks, 0),
          model_seconds = COALESCE(t.seconds, 0)
        FROM (SELECT asset_id, COUNT(DISTINCT shot_index) AS shots, COUNT(*) AS windows
              FROM scene_window GROUP BY asset_id) w
        LEFT JOIN (SELECT s.asset_id, COUNT(*) AS tracks,
                          SUM(CASE WHEN tr.status = 'current' THEN 1 ELSE 0 END) AS current_tracks,
                          SUM(tr.wall_s) AS seconds
                   FROM track tr JOIN scene_window s ON s.id = tr.window_id GROUP BY s.asset_id) t
          ON t.asset_id = w.asset_id
        WHERE asset.id = w.asset_id"""))
    conn.execute(text("DELETE FROM generation_daily"))
    conn.execute(text(f"""
        INSERT INTO generation_daily (day, device, tracks, model_seconds)
        SELECT {_day_sql(conn)}, COALESCE(device, ''), COUNT(*), COALESCE(SUM(wall_s), 0)
        FROM track WHERE finished_at IS NOT NULL GROUP BY {_day_sql(conn)}, COALESCE(device, '')"""))
