"""track batch size

Why: a GPU agent may integrate track k of several windows as one batched ODE
(models/generation/batched.py, issue #18 §2). A batched take equals the unbatched one within
float tolerance, not bit for bit, and its bits depend on which windows shared the batch, so
the provenance of a take says how many windows it was generated with. Nullable: takes
recorded before this migration keep NULL (they were all generated alone).

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-05 06:00:00+00:00
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('track', schema=None) as batch_op:
        batch_op.add_column(sa.Column('batch_size', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('track', schema=None) as batch_op:
        batch_op.drop_column('batch_size')
