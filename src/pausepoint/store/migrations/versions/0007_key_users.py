"""API keys issued for a person: the user a key acts for and that user's groups.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    # Both nullable: keys created before act as themselves ("key:<id>"), in no group.
    op.add_column("api_keys", sa.Column("user", sa.String(255)))
    op.add_column("api_keys", sa.Column("groups", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("groups")
        batch.drop_column("user")
