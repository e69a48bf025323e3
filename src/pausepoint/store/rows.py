"""Rows read straight from the driver: the hot paths skip SQLAlchemy's constructs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Connection

from pausepoint.store.dialects import driver_cursor, is_postgresql
from pausepoint.store.records import CommandRecord, ExecutionRecord

EXECUTION_COLUMNS = (
    "id, org_id, namespace, flow_id, flow_revision, status, state, labels, created_at, "
    "updated_at, started_at, ended_at, event_seq, lease_owner, lease_expires_at, "
    "commands_version"
)
COMMAND_COLUMNS = (
    "id, execution_id, seq, kind, payload, actor, reason, idempotency_key, request_id, status, "
    "message, state_before, state_after, created_at, applied_at, traceparent"
)

_SELECT_EXECUTION = f"SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = ?"
_SELECT_PENDING_COMMANDS = (
    f"SELECT {COMMAND_COLUMNS} FROM commands "
    "WHERE execution_id = ? AND status = 'pending' ORDER BY seq"
)


def select_execution(
    conn: Connection, execution_id: str, loads: Callable[[Any], Any], *, lock: bool = False
) -> ExecutionRecord | None:
    """The execution's row; with ``lock``, held until the transaction ends.

    SQLite needs no row lock: its write transactions are serialised already.
    """
    cursor = driver_cursor(conn)
    sql = _SELECT_EXECUTION
    if lock and is_postgresql(conn):
        sql += " FOR UPDATE"
    cursor.execute(sql, (execution_id,))
    row = cursor.fetchone()
    return execution_row(row, loads) if row else None


def select_task_runs(
    conn: Connection, execution_id: str, loads: Callable[[Any], Any]
) -> list[dict[str, Any]]:
    """The execution's task runs, in no particular order."""
    cursor = driver_cursor(conn)
    cursor.execute("SELECT data FROM task_runs WHERE execution_id = ?", (execution_id,))
    return [loads(row[0]) for row in cursor.fetchall()]


def select_pending_commands(
    conn: Connection, execution_id: str, loads: Callable[[Any], Any]
) -> list[CommandRecord]:
    """The execution's unapplied commands, in acceptance order."""
    cursor = driver_cursor(conn)
    cursor.execute(_SELECT_PENDING_COMMANDS, (execution_id,))
    return [command_row(row, loads) for row in cursor.fetchall()]


def execution_row(row: tuple[Any, ...], loads: Callable[[Any], Any]) -> ExecutionRecord:
    """An execution from a driver row; ``loads`` reads its JSON columns (see ``json_loader``)."""
    return ExecutionRecord(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        loads(row[6]),
        loads(row[7]),
        row[8],
        row[9],
        row[10],
        row[11],
        row[12],
        row[13],
        row[14],
        row[15],
    )


def command_row(row: tuple[Any, ...], loads: Callable[[Any], Any]) -> CommandRecord:
    return CommandRecord(
        row[0],
        row[1],
        row[2],
        row[3],
        loads(row[4]),
        row[5],
        row[6],
        row[7],
        row[8],
        row[9],
        row[10],
        row[11],
        row[12],
        row[13],
        row[14],
        row[15],
    )
