"""captioner domain

Why: the demo bundle's captioner knows only FoleyWorld; on other footage it still proposes
FoleyWorld sounds. Each prompt row now records how far its scene's keyframes are from
FoleyWorld's (models/prompting/domain_check.py) and, when they are out of domain, the note a
user is shown (which captioner, what it knows, how to bring a VLM or prompts), so `status`,
the run summary and the dashboard can say so per asset (issue #20 §4). Nullable: rows written
before, and prompts from any other captioner, keep NULL.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 00:30:00+00:00
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('prompt', schema=None) as batch_op:
        batch_op.add_column(sa.Column('captioner_ood_distance', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('captioner_note', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('prompt', schema=None) as batch_op:
        batch_op.drop_column('captioner_note')
        batch_op.drop_column('captioner_ood_distance')
