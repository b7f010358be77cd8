"""run history: history_runs and history_changes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 22:40:00
"""

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

MYSQL: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin",
                         "mysql_engine": "InnoDB"}
SNAPSHOT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table('history_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('command', sa.String(length=255), nullable=False),
    sa.Column('api', sa.String(length=16), nullable=True),
    sa.Column('outcome', sa.String(length=510), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    **MYSQL
    )
    with op.batch_alter_table('history_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_history_runs_started_at'), ['started_at'],
                              unique=False)

    op.create_table('history_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('phonebook_id', sa.Integer(), nullable=False),
    sa.Column('owner', sa.String(length=320), nullable=True),
    sa.Column('phonebook', sa.String(length=255), nullable=False),
    sa.Column('action', sa.String(length=8), nullable=False),
    sa.Column('entry_id', sa.Integer(), nullable=False),
    sa.Column('before', SNAPSHOT, nullable=True),
    sa.Column('after', SNAPSHOT, nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['history_runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    **MYSQL
    )
    with op.batch_alter_table('history_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_history_changes_run_id'), ['run_id'], unique=False)


def downgrade() -> None:
    # Dropping a table drops its indexes (MariaDB refuses to drop an index its FK needs).
    op.drop_table('history_changes')
    op.drop_table('history_runs')
