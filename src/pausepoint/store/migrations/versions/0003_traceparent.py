"""Commands keep the W3C trace context of the request that sent them.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.add_column("commands", sa.Column("traceparent", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("commands") as batch:
        batch.drop_column("traceparent")
