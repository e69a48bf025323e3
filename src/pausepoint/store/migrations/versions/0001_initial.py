"""Initial schema: flows, executions, task runs, events, commands.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "flows",
        sa.Column("org_id", sa.String(64), primary_key=True),
        sa.Column("namespace", sa.String(255), primary_key=True),
        sa.Column("flow_id", sa.String(255), primary_key=True),
        sa.Column("revision", sa.Integer, primary_key=True),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "executions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("namespace", sa.String(255), nullable=False),
        sa.Column("flow_id", sa.String(255), nullable=False),
        sa.Column("flow_revision", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("state", sa.JSON, nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float),
        sa.Column("ended_at", sa.Float),
        sa.Column("event_seq", sa.Integer, nullable=False, server_default="0"),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_expires_at", sa.Float),
        sa.Column("wake_at", sa.Float),
        sa.Column("commands_version", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_executions_org_created", "executions", ["org_id", "created_at"])
    op.create_index("ix_executions_status", "executions", ["status"])
    op.create_index("ix_executions_wake", "executions", ["wake_at"])
    op.create_index("ix_executions_lease", "executions", ["lease_owner", "lease_expires_at"])
    op.create_index("ix_executions_flow", "executions", ["org_id", "namespace", "flow_id"])
    op.create_table(
        "task_runs",
        sa.Column("execution_id", sa.String(64), primary_key=True),
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("task_id", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
    )
    op.create_table(
        "events",
        sa.Column("execution_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
    )
    op.create_table(
        "commands",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("execution_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("idempotency_key", sa.String(255)),
        sa.Column("request_id", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("message", sa.Text),
        sa.Column("state_before", sa.String(16)),
        sa.Column("state_after", sa.String(16)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("applied_at", sa.Float),
        sa.UniqueConstraint("execution_id", "seq", name="uq_commands_execution_seq"),
        sa.UniqueConstraint("execution_id", "idempotency_key", name="uq_commands_idempotency"),
    )
    op.create_index("ix_commands_pending", "commands", ["execution_id", "status"])


def downgrade() -> None:
    for table in ("commands", "events", "task_runs", "executions", "flows"):
        op.drop_table(table)
