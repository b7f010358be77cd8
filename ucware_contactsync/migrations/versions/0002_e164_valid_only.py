"""E.164 only for valid numbers: recompute the caller-ID keys stored by older versions

Older versions stored an E.164 for numbers that were merely "possible" and for local numbers
without trunk prefix (a guess of the area); this recomputes every stored E.164 with today's
rules and the database's own ``default_region``/``area_code``. The written numbers are kept.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    from ucware_contactsync.lookup import refresh_e164

    conn = op.get_bind()
    kv = sa.table("kv_store", sa.column("namespace"), sa.column("key"), sa.column("value"))
    stored = dict(conn.execute(sa.select(kv.c.key, kv.c.value).where(
        kv.c.namespace == "contactsync", kv.c.key.in_(["default_region", "area_code"]))).all())
    refresh_e164(conn, (stored.get("default_region") or "DE").upper(),
                 (stored.get("area_code") or "").lstrip("0"))


def downgrade() -> None:
    pass  # the stricter E.164 values are valid for the older version too
