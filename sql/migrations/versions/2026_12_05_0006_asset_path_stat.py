"""asset_path stat index

Why: a nightly backfill over an archive that is almost all done read every file again (sha256
and a probe) to learn that nothing changed: the night's cost grew with the archive, not with
what changed (issue #18 §4). Each path row now keeps the identity of the file as it was when
its content was hashed: size, mtime (ns), inode and device (tasks/stat_index.py); discovery
trusts the recorded asset while they are unchanged. Nullable: rows written before, racy stats
(a file modified within 2 s of being walked) and remote paths' source rows without a stat keep
NULL, which is never trusted, so the first walk after this migration hashes every file once
and records them.

Revision ID: 0006
Revises: 0007 (landed first, itself on 0005: landed history is never re-parented, so 0006 follows it)
Create Date: 2026-12-05 04:00:00+00:00
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('asset_path', schema=None) as batch_op:
        batch_op.add_column(sa.Column('size_bytes', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('mtime_ns', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('inode', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('device', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('asset_path', schema=None) as batch_op:
        batch_op.drop_column('device')
        batch_op.drop_column('inode')
        batch_op.drop_column('mtime_ns')
        batch_op.drop_column('size_bytes')
