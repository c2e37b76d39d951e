"""scene → scene_window

Why: the ``scene`` table held one row per model *window*, its ``index`` the shot: names that
misled every reader (issue #23, "names that say what they hold"). The table is now
``scene_window`` with ``shot_index``; the columns pointing at it (``prompt.scene_id``,
``track.scene_id``, ``failure.scene_id``) are ``window_id``; indexes and constraints carry the
new names of the naming convention. Every row and every reference is kept.

PostgreSQL renames in place (tables, columns, constraints, indexes and the id sequence: no
copy, references follow by OID). SQLite cannot rename a constraint, so it rebuilds: a new
``scene_window`` with the rows copied; in the three referencing tables the column renamed
natively, then each table rebuilt in batch mode (rows copied) for its constraints' names; then
the old table dropped;
sql/migrate.py runs this with foreign-key enforcement off and checks every reference before
the commit. Downgrade does the same backwards.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 03:30:00+00:00
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import sql.schema


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

# (old name, new name) of everything PostgreSQL renames in place, in order.
_TABLE = ('scene', 'scene_window')
_SHOT = ('index', 'shot_index')
_CONSTRAINTS = [  # (table after the table rename, old, new)
    ('scene_window', 'pk_scene', 'pk_scene_window'),
    ('scene_window', 'uq_scene_asset_id_index_window_index',
     'uq_scene_window_asset_id_shot_index_window_index'),
    ('scene_window', 'fk_scene_asset_id_asset', 'fk_scene_window_asset_id_asset'),
    ('prompt', 'fk_prompt_scene_id_scene', 'fk_prompt_window_id_scene_window'),
    ('prompt', 'uq_prompt_scene_id_order_text', 'uq_prompt_window_id_order_text'),
    ('track', 'fk_track_scene_id_scene', 'fk_track_window_id_scene_window'),
    ('track', 'uq_track_scene_id_order_version', 'uq_track_window_id_order_version'),
    ('failure', 'fk_failure_scene_id_scene', 'fk_failure_window_id_scene_window'),
]
_INDEXES = [
    ('ix_scene_asset_id', 'ix_scene_window_asset_id'),
    ('ix_prompt_scene_id', 'ix_prompt_window_id'),
    ('ix_track_scene_id', 'ix_track_window_id'),
]
_CHILDREN = ('prompt', 'track', 'failure')
# the natural key of each referencing table after its window column (None: no unique key)
_CHILD_KEYS = {'prompt': ['order', 'text'], 'track': ['order', 'version'], 'failure': None}
_WINDOW_COLUMNS = ['id', 'asset_id', 'window_index', 'start_s', 'end_s', 'shot_start_s',
                   'shot_end_s', 'start_transition', 'end_transition', 'start_transition_s',
                   'end_transition_s', 'created_at']


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        _rename_in_place(forward=True)
    else:
        _rebuild(old=_TABLE[0], new=_TABLE[1], old_shot=_SHOT[0], new_shot=_SHOT[1],
                 old_fk='scene_id', new_fk='window_id')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        _rename_in_place(forward=False)
    else:
        _rebuild(old=_TABLE[1], new=_TABLE[0], old_shot=_SHOT[1], new_shot=_SHOT[0],
                 old_fk='window_id', new_fk='scene_id')


def _rename_in_place(forward: bool) -> None:
    def pick(pair: tuple[str, str]) -> tuple[str, str]:
        return pair if forward else (pair[1], pair[0])

    old_t, new_t = pick(_TABLE)
    op.rename_table(old_t, new_t)
    old_c, new_c = pick(_SHOT)
    op.alter_column(new_t, old_c, new_column_name=new_c)
    old_fk, new_fk = pick(('scene_id', 'window_id'))
    for child in _CHILDREN:
        op.alter_column(child, old_fk, new_column_name=new_fk)
    for table, a, b in _CONSTRAINTS:
        table = table if forward or table != 'scene_window' else 'scene'
        old, new = pick((a, b))
        op.execute(f'ALTER TABLE {table} RENAME CONSTRAINT {old} TO {new}')
    for a, b in _INDEXES:
        old, new = pick((a, b))
        op.execute(f'ALTER INDEX {old} RENAME TO {new}')
    old_seq, new_seq = pick(('scene_id_seq', 'scene_window_id_seq'))
    op.execute(f'ALTER SEQUENCE IF EXISTS {old_seq} RENAME TO {new_seq}')


def _rebuild(*, old: str, new: str, old_shot: str, new_shot: str, old_fk: str, new_fk: str) -> None:
    op.create_table(
        new,
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('asset_id', sa.Integer(), nullable=False),
        sa.Column(new_shot, sa.Integer(), nullable=False),
        sa.Column('window_index', sa.Integer(), nullable=False),
        sa.Column('start_s', sa.Float(), nullable=False),
        sa.Column('end_s', sa.Float(), nullable=False),
        sa.Column('shot_start_s', sa.Float(), nullable=True),
        sa.Column('shot_end_s', sa.Float(), nullable=True),
        sa.Column('start_transition', sa.String(length=16), nullable=True),
        sa.Column('end_transition', sa.String(length=16), nullable=True),
        sa.Column('start_transition_s', sa.Float(), nullable=True),
        sa.Column('end_transition_s', sa.Float(), nullable=True),
        sa.Column('created_at', sql.schema.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['asset_id'], ['asset.id'], name=op.f(f'fk_{new}_asset_id_asset'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f(f'pk_{new}')),
        sa.UniqueConstraint('asset_id', new_shot, 'window_index',
                            name=op.f(f'uq_{new}_asset_id_{new_shot}_window_index')),
    )
    cols = ', '.join(_WINDOW_COLUMNS)
    op.execute(f'INSERT INTO {new} ({cols}, "{new_shot}") SELECT {cols}, "{old_shot}" FROM {old}')
    op.create_index(op.f(f'ix_{new}_asset_id'), new, ['asset_id'], unique=False)
    for child in _CHILDREN:
        key = _CHILD_KEYS[child]
        # the column renames natively (its constraints follow); their names need a rebuild
        op.execute(f'ALTER TABLE {child} RENAME COLUMN {old_fk} TO {new_fk}')
        if key is not None:
            op.drop_index(f'ix_{child}_{old_fk}', table_name=child)
            op.create_index(f'ix_{child}_{new_fk}', child, [new_fk], unique=False)
        with op.batch_alter_table(child, recreate='always') as batch_op:
            batch_op.drop_constraint(f'fk_{child}_{old_fk}_{old}', type_='foreignkey')
            batch_op.create_foreign_key(f'fk_{child}_{new_fk}_{new}', new, [new_fk], ['id'],
                                        ondelete='CASCADE')
            if key is not None:
                batch_op.drop_constraint(f'uq_{child}_{old_fk}_{key[0]}_{key[1]}', type_='unique')
                batch_op.create_unique_constraint(f'uq_{child}_{new_fk}_{key[0]}_{key[1]}',
                                                  [new_fk, *key])
    op.drop_index(f'ix_{old}_asset_id', table_name=old)
    op.drop_table(old)
