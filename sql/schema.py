"""The provenance schema: what produced every file stepfoley writes.

Natural keys (unique constraints) make every write an upsert: asset by content sha256, model
window by (asset, shot index, window index), prompt by (window, order, text), track by (window,
order, version), mix by (asset, config hash), output by (asset, uri). Times are UTC, tz-aware.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Date, DateTime, Float, ForeignKey, Integer, MetaData, \
    String, Text, UniqueConstraint, Index
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every dialect (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class Asset(Base):
    __tablename__ = "asset"
    # (status, id): the dashboard's and `status`'s filtered pages and the pending queue read
    # one page of the index, whatever the archive's size; likewise (library, id).
    __table_args__ = (Index("ix_asset_status_id", "status", "id"),
                      Index("ix_asset_library_id", "library", "id"),
                      # covers v_throughput_daily: an index-only scan of the done assets' rollups
                      Index("ix_asset_status_finished_at", "status", "finished_at", "duration_s",
                            "n_shots", "n_windows", "n_tracks"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    uri: Mapped[str] = mapped_column(Text)
    library: Mapped[str | None] = mapped_column(Text)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    container: Mapped[str | None] = mapped_column(String(64))
    duration_s: Mapped[float | None] = mapped_column(Float)
    fps: Mapped[float | None] = mapped_column(Float)
    vfr: Mapped[bool | None] = mapped_column(Boolean)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    rotation: Mapped[int | None] = mapped_column(Integer)
    video_codec: Mapped[str | None] = mapped_column(String(64))
    has_audio: Mapped[bool | None] = mapped_column(Boolean)
    audio_loudness_lufs: Mapped[float | None] = mapped_column(Float)
    probe_json: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    error: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claim_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow,
                                                 index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Rollups of the asset's windows and tracks, kept exact by the repository's writes
    # (sql/rollups.py) so the dashboard's views need not count a million tracks; NULL until
    # the asset's first window is written (read as 0).
    n_shots: Mapped[int | None] = mapped_column(Integer)
    n_windows: Mapped[int | None] = mapped_column(Integer)
    n_tracks: Mapped[int | None] = mapped_column(Integer)  # every take, any status
    n_current_tracks: Mapped[int | None] = mapped_column(Integer)
    model_seconds: Mapped[float | None] = mapped_column(Float)  # wall_s of every take


class AssetPath(Base):
    __tablename__ = "asset_path"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("asset.id", ondelete="CASCADE"), index=True)
    uri: Mapped[str] = mapped_column(Text, unique=True)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The stat index (tasks/stat_index.py): the file's identity when its content was hashed;
    # NULL = unknown, never trusted (inode/device folded into signed 64 bits).
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    mtime_ns: Mapped[int | None] = mapped_column(BigInteger)
    inode: Mapped[int | None] = mapped_column(BigInteger)
    device: Mapped[int | None] = mapped_column(BigInteger)


class SceneWindow(Base):
    """One model window of one shot (``shot_index`` = the shot, the CLI's SCENE;
    ``window_index`` = the window within it)."""

    __tablename__ = "scene_window"
    __table_args__ = (UniqueConstraint("asset_id", "shot_index", "window_index"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("asset.id", ondelete="CASCADE"), index=True)
    shot_index: Mapped[int] = mapped_column(Integer)
    window_index: Mapped[int] = mapped_column(Integer, default=0)
    start_s: Mapped[float] = mapped_column(Float)
    end_s: Mapped[float] = mapped_column(Float)
    shot_start_s: Mapped[float | None] = mapped_column(Float)
    shot_end_s: Mapped[float | None] = mapped_column(Float)
    # how the shot begins and ends: start/end (of the asset), cut, fade, dissolve; and the
    # transition's length on this shot's side (the sound's fade-in/out over a fade)
    start_transition: Mapped[str | None] = mapped_column(String(16))
    end_transition: Mapped[str | None] = mapped_column(String(16))
    start_transition_s: Mapped[float | None] = mapped_column(Float)
    end_transition_s: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Prompt(Base):
    __tablename__ = "prompt"
    __table_args__ = (UniqueConstraint("window_id", "order", "text"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    window_id: Mapped[int] = mapped_column(ForeignKey("scene_window.id", ondelete="CASCADE"), index=True)
    order: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16), default="captioner")
    score: Mapped[float | None] = mapped_column(Float)
    dropped: Mapped[bool] = mapped_column(Boolean, default=False)
    drop_reason: Mapped[str | None] = mapped_column(Text)
    captioner_id: Mapped[str | None] = mapped_column(String(200))
    # The demo captioner on footage that is not FoleyWorld (models/prompting/domain_check.py):
    # distance of the shot's keyframes from FoleyWorld's, and what the user is told.
    captioner_ood_distance: Mapped[float | None] = mapped_column(Float)
    captioner_note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Track(Base):
    __tablename__ = "track"
    __table_args__ = (UniqueConstraint("window_id", "order", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    window_id: Mapped[int] = mapped_column(ForeignKey("scene_window.id", ondelete="CASCADE"), index=True)
    order: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer, default=1)
    prompt_id: Mapped[int | None] = mapped_column(ForeignKey("prompt.id", ondelete="SET NULL"))
    prompt_text: Mapped[str] = mapped_column(Text)
    seed: Mapped[int] = mapped_column(BigInteger)
    alpha: Mapped[float] = mapped_column(Float)
    beta: Mapped[float] = mapped_column(Float)
    steps: Mapped[int] = mapped_column(Integer)
    mode: Mapped[str] = mapped_column(String(16))
    bundle_id: Mapped[str] = mapped_column(String(200))
    weights_sha256: Mapped[str] = mapped_column(String(64))
    config_hash: Mapped[str] = mapped_column(String(64))
    stem_uri: Mapped[str] = mapped_column(Text)
    stem_sha256: Mapped[str] = mapped_column(String(64))
    loudness_lufs: Mapped[float | None] = mapped_column(Float)
    gain_db: Mapped[float | None] = mapped_column(Float)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    device: Mapped[str | None] = mapped_column(String(200))
    wall_s: Mapped[float | None] = mapped_column(Float)
    # Windows integrated together for this take (1 = alone; NULL = recorded before 0008)
    batch_size: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="current", index=True)


class Mix(Base):
    __tablename__ = "mix"
    __table_args__ = (UniqueConstraint("asset_id", "config_hash"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("asset.id", ondelete="CASCADE"), index=True)
    config_hash: Mapped[str] = mapped_column(String(64))
    uri: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    loudness_lufs: Mapped[float | None] = mapped_column(Float)
    true_peak_dbtp: Mapped[float | None] = mapped_column(Float)
    sample_rate: Mapped[int | None] = mapped_column(Integer)
    stems_json: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Output(Base):
    __tablename__ = "output"
    __table_args__ = (UniqueConstraint("asset_id", "uri"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("asset.id", ondelete="CASCADE"), index=True)
    mix_id: Mapped[int | None] = mapped_column(ForeignKey("mix.id", ondelete="SET NULL"))
    uri: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    container: Mapped[str | None] = mapped_column(String(16))
    video_codec: Mapped[str | None] = mapped_column(String(64))
    audio_codecs: Mapped[list[Any] | None] = mapped_column(JSON)
    streams: Mapped[int | None] = mapped_column(Integer)
    sidecars: Mapped[list[Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class GenerationDaily(Base):
    """Takes generated and their model seconds per UTC day of completion and device (every
    take, current or not: work done); kept exact by the repository's track writes
    (sql/rollups.py). ``device`` is '' for takes that name none."""

    __tablename__ = "generation_daily"
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    device: Mapped[str] = mapped_column(String(200), primary_key=True)
    tracks: Mapped[int] = mapped_column(Integer)
    model_seconds: Mapped[float] = mapped_column(Float)


class Run(Base):
    __tablename__ = "run"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prefect_flow_run_id: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    parameters: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    counts: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="running")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RunAsset(Base):
    """Which assets a run took on (for its report and progress)."""

    __tablename__ = "run_asset"
    __table_args__ = (UniqueConstraint("run_id", "asset_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("run.id", ondelete="CASCADE"), index=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("asset.id", ondelete="CASCADE"), index=True)


class Failure(Base):
    __tablename__ = "failure"
    __table_args__ = (Index("ix_failure_dedupe", "run_id", "uri", "stage", "traceback_digest"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("run.id", ondelete="SET NULL"))
    asset_id: Mapped[int | None] = mapped_column(ForeignKey("asset.id", ondelete="CASCADE"), index=True)
    window_id: Mapped[int | None] = mapped_column(ForeignKey("scene_window.id", ondelete="CASCADE"))
    track_id: Mapped[int | None] = mapped_column(ForeignKey("track.id", ondelete="CASCADE"))
    uri: Mapped[str | None] = mapped_column(Text)
    stage: Mapped[str] = mapped_column(String(32))
    error_class: Mapped[str] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text)
    traceback_digest: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class ModelBundle(Base):
    """A model bundle that produced tracks: every content file with its sha256.

    Tracks name their bundle (``track.bundle_id``, ``track.weights_sha256``); this row says
    which files those are, so a track can be traced to the exact weight files that made it
    (``files``: ``{relative path: sha256}``, weights, configs and tokenizer), and where the
    bundle was last loaded from. One row per bundle id (a content digest): an upsert."""

    __tablename__ = "model_bundle"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bundle_id: Mapped[str] = mapped_column(String(200), unique=True)
    content_sha256: Mapped[str] = mapped_column(String(64))
    weights_sha256: Mapped[str] = mapped_column(String(64), index=True)
    files: Mapped[dict[str, Any]] = mapped_column(JSON)
    path: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
