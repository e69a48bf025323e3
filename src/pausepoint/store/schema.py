"""The control-plane schema: one module, SQLAlchemy Core tables.

Migrations in ``store/migrations`` must produce exactly this schema (a test
compares them).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

flows = sa.Table(
    "flows",
    metadata,
    sa.Column("org_id", sa.String(64), primary_key=True),
    sa.Column("namespace", sa.String(255), primary_key=True),
    sa.Column("flow_id", sa.String(255), primary_key=True),
    sa.Column("revision", sa.Integer, primary_key=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
)

executions = sa.Table(
    "executions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("org_id", sa.String(64), nullable=False),
    sa.Column("namespace", sa.String(255), nullable=False),
    sa.Column("flow_id", sa.String(255), nullable=False),
    sa.Column("flow_revision", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    # The engine state without its task runs (those live in task_runs).
    sa.Column("state", sa.JSON, nullable=False),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float),
    sa.Column("ended_at", sa.Float),
    sa.Column("event_seq", sa.Integer, nullable=False, server_default="0"),
    # Leases: one process runs an execution at a time.
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_expires_at", sa.Float),
    # When someone should look at this execution again (a due timer or a new command).
    sa.Column("wake_at", sa.Float),
    sa.Column("commands_version", sa.Integer, nullable=False, server_default="0"),
    sa.Index("ix_executions_org_created", "org_id", "created_at"),
    sa.Index("ix_executions_status", "status"),
    sa.Index("ix_executions_wake", "wake_at"),
    sa.Index("ix_executions_lease", "lease_owner", "lease_expires_at"),
    sa.Index("ix_executions_flow", "org_id", "namespace", "flow_id"),
    sa.Index("ix_executions_ended", "ended_at"),
)

task_runs = sa.Table(
    "task_runs",
    metadata,
    sa.Column("execution_id", sa.String(64), primary_key=True),
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("task_id", sa.String(255), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("execution_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
)

commands = sa.Table(
    "commands",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("execution_id", sa.String(64), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("idempotency_key", sa.String(255)),
    sa.Column("request_id", sa.String(64)),
    sa.Column("status", sa.String(16), nullable=False),  # pending | applied | rejected
    sa.Column("message", sa.Text),
    sa.Column("state_before", sa.String(16)),
    sa.Column("state_after", sa.String(16)),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("applied_at", sa.Float),
    sa.Column("traceparent", sa.String(64)),  # W3C trace context, version 00 (55 characters)
    sa.UniqueConstraint("execution_id", "seq", name="uq_commands_execution_seq"),
    sa.UniqueConstraint("execution_id", "idempotency_key", name="uq_commands_idempotency"),
    sa.Index("ix_commands_pending", "execution_id", "status"),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("org_id", sa.String(64), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    # SHA-256 of the whole key: keys are long random tokens, so a fast hash is enough.
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float),
    sa.Column("user", sa.String(255)),  # the person the key acts for; NULL: the key itself
    sa.Column("groups", sa.Text),  # that person's groups, a JSON list of names
    sa.Index("ix_api_keys_org", "org_id"),
)

secrets = sa.Table(
    "secrets",
    metadata,
    sa.Column("org_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),  # encrypted (Fernet)
    sa.Column("updated_at", sa.Float, nullable=False),
)

stored_files = sa.Table(
    "stored_files",
    metadata,
    # Internal storage: files that flows read and write by URI (``kestra:///...``),
    # an organization's own. Batches of a ForEachItem, files sent as FILE inputs.
    sa.Column("org_id", sa.String(64), primary_key=True),
    sa.Column("uri", sa.String(1024), primary_key=True),
    sa.Column("content", sa.LargeBinary, nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

kv_pairs = sa.Table(
    "kv_pairs",
    metadata,
    # Kestra's key-value store (kv.Set, kv.Get, kv.Delete): a namespace's keys, an
    # organization's own. ``value`` is JSON text; past ``expires_at`` a key reads as absent.
    sa.Column("org_id", sa.String(64), primary_key=True),
    sa.Column("namespace", sa.String(255), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("expires_at", sa.Float),
    sa.Column("updated_at", sa.Float, nullable=False),
)

idempotency = sa.Table(
    "idempotency",
    metadata,
    sa.Column("org_id", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("method", sa.String(8), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("body_hash", sa.String(64), nullable=False),
    sa.Column("status_code", sa.Integer, nullable=False),
    sa.Column("response", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

triggers = sa.Table(
    "triggers",
    metadata,
    sa.Column("org_id", sa.String(64), primary_key=True),
    sa.Column("namespace", sa.String(255), primary_key=True),
    sa.Column("flow_id", sa.String(255), primary_key=True),
    sa.Column("trigger_id", sa.String(255), primary_key=True),
    sa.Column("type", sa.String(16), nullable=False),
    # The trigger's definition, hashed: a changed schedule starts again from now.
    sa.Column("spec_hash", sa.String(64), nullable=False),
    sa.Column("next_at", sa.Float),  # a schedule's next tick not yet fired
    sa.Column("backfill_at", sa.Float),  # the next backfill tick, until backfill_end
    sa.Column("backfill_end", sa.Float),
    sa.Column("paused", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("paused_at", sa.Float),
    sa.Column("catch_up", sa.String(8)),  # QUEUE: fire every tick missed while paused
    sa.Column("last_fired_at", sa.Float),
    sa.Column("last_execution_id", sa.String(64)),
    sa.Column("last_error", sa.Text),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Index("ix_triggers_due", "type", "next_at"),
)

scheduler = sa.Table(
    "scheduler",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    # One process at a time fires triggers: the one holding this lease.
    sa.Column("owner", sa.String(64)),
    sa.Column("expires_at", sa.Float),
    # Flow triggers: executions that ended before this were looked at.
    sa.Column("cursor_at", sa.Float),
)

execution_links = sa.Table(
    "execution_links",
    metadata,
    # A subflow's execution, the execution whose task run started it, and the tree's root.
    sa.Column("child_id", sa.String(64), primary_key=True),
    sa.Column("org_id", sa.String(64), nullable=False),
    sa.Column("parent_id", sa.String(64), nullable=False),
    sa.Column("parent_task_run_id", sa.String(32), nullable=False),
    sa.Column("root_id", sa.String(64), nullable=False),
    # The parent's task waits for the child's end (Subflow's wait): it must hear of it.
    sa.Column("waits", sa.Boolean, nullable=False),
    sa.Column("notified_at", sa.Float),  # when the parent accepted the child's end
    sa.Column("cascade_error", sa.Text),  # the last command a cascade could not send it
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_links_parent", "parent_id"),
    sa.Index("ix_links_root", "root_id"),
    sa.Index("ix_links_unnotified", "waits", "notified_at"),
)
