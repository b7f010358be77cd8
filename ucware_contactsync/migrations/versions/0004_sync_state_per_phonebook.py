"""Sync states keyed by phonebook, mailbox address, API and folder

Older versions kept one set of states per user and API, whatever phonebook they were written
into and whatever mailbox they were read from; a changed ``phonebookname`` or e-mail address
could resume from a state that did not belong to the phonebook. The old states cannot be
attributed after the fact (that is the defect), so they are dropped: every phonebook and
entry stays, and each synced user gets exactly one full read on the next run, which writes
only real differences and brings back what the old keying hid.

Revision ID: 0004
Revises: 0003
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

MYSQL: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin",
                         "mysql_engine": "InnoDB"}


def upgrade() -> None:
    op.drop_table('sync_states')
    op.create_table(
        'sync_states',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('phonebook_id', sa.Integer(), nullable=False),
        sa.Column('mailbox', sa.String(length=320), nullable=False),
        sa.Column('api', sa.String(length=16), nullable=False),
        sa.Column('folder_id', sa.String(length=512), nullable=False),
        sa.Column('state', sa.Text(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['phonebook_id'], ['phonebooks.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('phonebook_id', 'api', 'folder_id'),
        **MYSQL,
    )


def downgrade() -> None:
    # The older version's shape, empty: it reads every mailbox once in full.
    op.drop_table('sync_states')
    op.create_table(
        'sync_states',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('api', sa.String(length=16), nullable=False),
        sa.Column('folder_id', sa.String(length=512), nullable=False),
        sa.Column('state', sa.Text(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('user_id', 'api', 'folder_id'),
        **MYSQL,
    )
