"""model bundle provenance

Why: tracks named their bundle only by id and by the digest over its weight files' hashes; a
user tracing a track to the exact weight files (issue #20 §3: "provenance naming the bundle
and every weight file's hash") had to find the bundle directory and re-hash it. One row per
bundle now lists every content file of it with its sha256 (``files``), the bundle's digests,
and where it was last loaded from. A new table: rows written before simply have none.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 03:00:00+00:00
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import sql.schema


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'model_bundle',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('bundle_id', sa.String(length=200), nullable=False),
        sa.Column('content_sha256', sa.String(length=64), nullable=False),
        sa.Column('weights_sha256', sa.String(length=64), nullable=False),
        sa.Column('files', sa.JSON(), nullable=False),
        sa.Column('path', sa.Text(), nullable=True),
        sa.Column('created_at', sql.schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sql.schema.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_model_bundle')),
        sa.UniqueConstraint('bundle_id', name=op.f('uq_model_bundle_bundle_id')),
    )
    with op.batch_alter_table('model_bundle', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_model_bundle_weights_sha256'), ['weights_sha256'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('model_bundle', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_model_bundle_weights_sha256'))
    op.drop_table('model_bundle')
