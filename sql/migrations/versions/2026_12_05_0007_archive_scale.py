"""archive scale: rollups and the indexes the dashboard's pages need

Why: at 100,000 assets and a million tracks (issue #18 §5) the overview counted every track
of the archive twice per request (v_throughput_daily's correlated subqueries per done asset,
v_generation_seconds_daily's scan of the track table): 3.4 s. Now:

- ``asset`` carries its rollups (n_shots, n_windows, n_tracks, n_current_tracks,
  model_seconds) and ``generation_daily`` holds takes and model seconds per UTC day and device;
  both are recounted by the repository's writes (sql/rollups.py) and filled here from the rows;
- indexes: asset (status, id) replaces asset (status) (a filtered page, the pending queue and
  the per-status counts read one index range), asset (library, id), asset (updated_at) (the
  assets page's filters), track (finished_at) (a day's recount), failure (asset_id) (an asset's
  failures; the cascade from asset), and asset (status, finished_at, duration_s, n_shots,
  n_windows, n_tracks), which v_throughput_daily reads alone (an index-only scan).

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-05 04:00:00+00:00
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0005'
branch_labels = None
depends_on = None

_ROLLUPS = [('n_shots', sa.Integer()), ('n_windows', sa.Integer()), ('n_tracks', sa.Integer()),
            ('n_current_tracks', sa.Integer()), ('model_seconds', sa.Float())]


def upgrade() -> None:
    with op.batch_alter_table('asset', schema=None) as batch_op:
        for name, type_ in _ROLLUPS:
            batch_op.add_column(sa.Column(name, type_, nullable=True))
        batch_op.drop_index('ix_asset_status')
        batch_op.create_index('ix_asset_status_id', ['status', 'id'], unique=False)
        batch_op.create_index('ix_asset_library_id', ['library', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_asset_updated_at'), ['updated_at'], unique=False)
        batch_op.create_index('ix_asset_status_finished_at', ['status', 'finished_at', 'duration_s',
                              'n_shots', 'n_windows', 'n_tracks'], unique=False)
    with op.batch_alter_table('track', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_track_finished_at'), ['finished_at'], unique=False)
    with op.batch_alter_table('failure', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_failure_asset_id'), ['asset_id'], unique=False)
    op.create_table(
        'generation_daily',
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('device', sa.String(length=200), nullable=False),
        sa.Column('tracks', sa.Integer(), nullable=False),
        sa.Column('model_seconds', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('day', 'device', name=op.f('pk_generation_daily')),
    )
    # the rollups of the rows already there (the same counts sql/rollups.py keeps)
    op.execute("""
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
        WHERE asset.id = w.asset_id""")
    day = ("CAST(finished_at AT TIME ZONE 'UTC' AS date)" if op.get_bind().dialect.name == 'postgresql'
           else "date(finished_at)")
    op.execute(f"""
        INSERT INTO generation_daily (day, device, tracks, model_seconds)
        SELECT {day}, COALESCE(device, ''), COUNT(*), COALESCE(SUM(wall_s), 0)
        FROM track WHERE finished_at IS NOT NULL GROUP BY {day}, COALESCE(device, '')""")


def downgrade() -> None:
    op.drop_table('generation_daily')
    with op.batch_alter_table('failure', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_failure_asset_id'))
    with op.batch_alter_table('track', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_track_finished_at'))
    with op.batch_alter_table('asset', schema=None) as batch_op:
        batch_op.drop_index('ix_asset_status_finished_at')
        batch_op.drop_index(batch_op.f('ix_asset_updated_at'))
        batch_op.drop_index('ix_asset_library_id')
        batch_op.drop_index('ix_asset_status_id')
        batch_op.create_index('ix_asset_status', ['status'], unique=False)
        for name, _ in reversed(_ROLLUPS):
            batch_op.drop_column(name)
