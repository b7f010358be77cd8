"""shared phonebooks: no owner, and the mailbox and folder they are read from

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 22:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('phonebooks', schema=None) as batch_op:
        batch_op.alter_column('owner_id', existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column('mailbox', sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column('folder', sa.String(length=255), nullable=True))


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM phonebooks WHERE owner_id IS NULL"))
    with op.batch_alter_table('phonebooks', schema=None) as batch_op:
        batch_op.drop_column('folder')
        batch_op.drop_column('mailbox')
        batch_op.alter_column('owner_id', existing_type=sa.Integer(), nullable=False)
