"""Subflows: which execution a child belongs to, and whether its parent heard of its end.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.create_table(
        "execution_links",
        sa.Column("child_id", sa.String(64), primary_key=True),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("parent_id", sa.String(64), nullable=False),
        sa.Column("parent_task_run_id", sa.String(32), nullable=False),
        sa.Column("root_id", sa.String(64), nullable=False),
        sa.Column("waits", sa.Boolean, nullable=False),
        sa.Column("notified_at", sa.Float),
        sa.Column("cascade_error", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_links_parent", "execution_links", ["parent_id"])
    op.create_index("ix_links_root", "execution_links", ["root_id"])
    op.create_index("ix_links_unnotified", "execution_links", ["waits", "notified_at"])


def downgrade() -> None:
    op.drop_table("execution_links")
