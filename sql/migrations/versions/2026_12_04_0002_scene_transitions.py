"""scene transitions

Why: a scene row (one window of a shot) now records how its shot begins and ends (start/end of
the asset, cut, fade, dissolve) and the transition's length on the shot's side, so the mix can
fade the sound with the picture, chapters can name the transition and the dashboard can show
it (issue #22). Nullable columns: rows written before keep NULL (read as a plain cut).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 23:30:00+00:00
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('scene', schema=None) as batch_op:
        batch_op.add_column(sa.Column('start_transition', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('end_transition', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('start_transition_s', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('end_transition_s', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('scene', schema=None) as batch_op:
        batch_op.drop_column('end_transition_s')
        batch_op.drop_column('start_transition_s')
        batch_op.drop_column('end_transition')
        batch_op.drop_column('start_transition')
