"""Triggers: their state (next tick, paused, backfill) and the scheduler's lease and cursor.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.create_table(
        "triggers",
        sa.Column("org_id", sa.String(64), primary_key=True),
        sa.Column("namespace", sa.String(255), primary_key=True),
        sa.Column("flow_id", sa.String(255), primary_key=True),
        sa.Column("trigger_id", sa.String(255), primary_key=True),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("next_at", sa.Float),
        sa.Column("backfill_at", sa.Float),
        sa.Column("backfill_end", sa.Float),
        sa.Column("paused", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("paused_at", sa.Float),
        sa.Column("catch_up", sa.String(8)),
        sa.Column("last_fired_at", sa.Float),
        sa.Column("last_execution_id", sa.String(64)),
        sa.Column("last_error", sa.Text),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_triggers_due", "triggers", ["type", "next_at"])
    op.create_table(
        "scheduler",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(64)),
        sa.Column("expires_at", sa.Float),
        sa.Column("cursor_at", sa.Float),
    )
    op.create_index("ix_executions_ended", "executions", ["ended_at"])


def downgrade() -> None:
    op.drop_index("ix_executions_ended", "executions")
    op.drop_table("scheduler")
    op.drop_table("triggers")
