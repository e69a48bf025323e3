"""Commands: control requests (pause, resume, cancel, …) recorded durably before they apply.

Accepting a command locks the execution's row (PostgreSQL; SQLite serialises
writers), so admission, recording and the wake-up it leaves are one atomic step
ordered against checkpoints of the same execution.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from pausepoint.errors import NotFound
from pausepoint.store import schema
from pausepoint.store.database import Database
from pausepoint.store.dialects import WORK_CHANNEL, driver_cursor, json_text, notify
from pausepoint.store.records import CommandRecord, ExecutionRecord
from pausepoint.store.rows import (
    COMMAND_COLUMNS,
    command_row,
    select_execution,
    select_pending_commands,
)

# Decides, inside the accepting transaction, what command to record.
CommandDecider = Callable[[ExecutionRecord, list[CommandRecord]], dict[str, Any]]


class Commands:
    """Statements on ``commands``, run by ``SqlStore`` through :meth:`Database.run`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def accept(
        self,
        execution_id: str,
        idempotency_key: str | None,
        decide: CommandDecider,
        now: float,
        org_id: str | None,
    ) -> tuple[CommandRecord, bool, int]:
        loads = self._db.loads
        with self._db.write() as conn:
            execution = select_execution(conn, execution_id, loads, lock=True)
            if execution is None or (org_id is not None and execution.org_id != org_id):
                raise NotFound(f"execution {execution_id} not found")
            cursor = driver_cursor(conn)
            if idempotency_key is not None:
                cursor.execute(
                    f"SELECT {COMMAND_COLUMNS} FROM commands "
                    "WHERE execution_id = ? AND idempotency_key = ?",
                    (execution_id, idempotency_key),
                )
                row = cursor.fetchone()
                if row is not None:
                    return command_row(row, loads), True, execution.commands_version
            pending = select_pending_commands(conn, execution_id, loads)
            values = decide(execution, pending)
            cursor.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM commands WHERE execution_id = ?",
                (execution_id,),
            )
            seq = cursor.fetchone()[0]
            record = CommandRecord(
                id=values["id"],
                execution_id=execution_id,
                seq=seq,
                kind=values["kind"],
                payload=values["payload"],
                actor=values["actor"],
                reason=values.get("reason"),
                idempotency_key=idempotency_key,
                request_id=values.get("request_id"),
                status="pending",
                message=None,
                state_before=execution.status,
                state_after=None,
                created_at=now,
                applied_at=None,
                traceparent=values.get("traceparent"),
            )
            cursor.execute(
                f"INSERT INTO commands ({COMMAND_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id,
                    execution_id,
                    seq,
                    record.kind,
                    json_text(record.payload),
                    record.actor,
                    record.reason,
                    idempotency_key,
                    record.request_id,
                    "pending",
                    None,
                    execution.status,
                    None,
                    now,
                    None,
                    record.traceparent,
                ),
            )
            cursor.execute(
                "UPDATE executions SET "
                "wake_at = CASE WHEN wake_at IS NULL OR wake_at > ? THEN ? ELSE wake_at END, "
                "commands_version = commands_version + 1 WHERE id = ? "
                "RETURNING commands_version",
                (now, now, execution_id),
            )
            version = int(cursor.fetchone()[0])
            notify(conn, WORK_CHANNEL, [execution_id])
            return record, False, version

    def pending(self, execution_id: str) -> tuple[list[CommandRecord], int]:
        e = schema.executions
        with self._db.read() as conn:
            version = conn.execute(
                sa.select(e.c.commands_version).where(e.c.id == execution_id)
            ).scalar_one()
            return select_pending_commands(conn, execution_id, self._db.loads), version

    def get(self, command_id: str) -> CommandRecord | None:
        with self._db.read() as conn:
            cursor = driver_cursor(conn)
            cursor.execute(f"SELECT {COMMAND_COLUMNS} FROM commands WHERE id = ?", (command_id,))
            row = cursor.fetchone()
            return command_row(row, self._db.loads) if row else None

    def of_execution(self, execution_id: str) -> list[CommandRecord]:
        c = schema.commands
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(c).where(c.c.execution_id == execution_id).order_by(c.c.seq)
            )
            return [_command(row) for row in rows]


def _command(row: Any) -> CommandRecord:
    return CommandRecord(
        id=row.id,
        execution_id=row.execution_id,
        seq=row.seq,
        kind=row.kind,
        payload=row.payload,
        actor=row.actor,
        reason=row.reason,
        idempotency_key=row.idempotency_key,
        request_id=row.request_id,
        status=row.status,
        message=row.message,
        state_before=row.state_before,
        state_after=row.state_after,
        created_at=row.created_at,
        applied_at=row.applied_at,
        traceparent=row.traceparent,
    )
