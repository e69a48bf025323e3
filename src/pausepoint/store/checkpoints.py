"""Checkpoints: what one engine step changed, written in one transaction (group commit).

Every write here is a conditional ``UPDATE`` of the execution's row (the lease
check) or runs after one, so on PostgreSQL the row lock orders it against
commands accepted concurrently (which lock the same row).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Connection

from pausepoint.store.database import Database
from pausepoint.store.dialects import (
    EVENTS_CHANNEL,
    driver_cursor,
    is_postgresql,
    json_text,
    notify,
)
from pausepoint.store.records import Checkpoint, EventRecord

TERMINAL = ("COMPLETED", "WARNING", "FAILED", "CANCELLED", "TERMINATED", "TIMED_OUT")

# A command accepted after the runtime last looked (a newer commands_version) keeps
# wake_at set, so its wake-up is not lost.
_UPDATE_EXECUTION = """
UPDATE executions SET
    status = ?, state = ?, updated_at = ?, started_at = ?, ended_at = ?, event_seq = ?,
    lease_owner = CASE WHEN ? THEN NULL ELSE lease_owner END,
    lease_expires_at = CASE WHEN ? THEN NULL ELSE lease_expires_at END,
    wake_at = CASE WHEN ? AND commands_version = ? THEN ? ELSE wake_at END
WHERE id = ? AND lease_owner = ?
"""
# The same for a writer that takes the lease with its checkpoint (a paused execution
# resumed from the writer's own copy): only if nothing was written since that copy.
_CLAIM_AND_UPDATE_EXECUTION = f"""
UPDATE executions SET
    status = ?, state = ?, updated_at = ?, started_at = ?, ended_at = ?, event_seq = ?,
    lease_owner = CASE WHEN ? THEN NULL ELSE ? END,
    lease_expires_at = CASE WHEN ? THEN NULL ELSE CAST(? AS DOUBLE PRECISION) END,
    wake_at = CASE WHEN ? AND commands_version = ? THEN ? ELSE wake_at END
WHERE id = ? AND event_seq = ?
  AND status NOT IN ({", ".join(f"'{status}'" for status in TERMINAL)})
  AND (lease_owner IS NULL OR lease_owner = ? OR lease_expires_at < ?)
"""
# The labels column is what search filters on: a Labels task's change reaches it too.
_UPDATE_LABELS = "UPDATE executions SET labels = ? WHERE id = ?"
LABELED_EVENT = "execution.labeled"
_UPSERT_TASK_RUN = """
INSERT INTO task_runs (execution_id, id, task_id, state, data) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (execution_id, id) DO UPDATE SET state = excluded.state, data = excluded.data
"""
_PENDING_COMMANDS = (
    "SELECT id, kind FROM commands WHERE execution_id = ? AND status = 'pending' ORDER BY seq"
)
_INSERT_EVENT = "INSERT INTO events (execution_id, seq, type, at, data) VALUES (?, ?, ?, ?, ?)"
_APPLY_COMMAND = """
UPDATE commands SET status = ?, message = ?, state_after = ?, applied_at = ?
WHERE id = ? AND status = 'pending'
"""


class Checkpoints:
    """Group commit of what engine steps changed, run by ``SqlStore`` through
    :meth:`Database.run`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def commit(self, batch: Sequence[Checkpoint]) -> list[bool]:
        with self._db.write() as conn:
            if not is_postgresql(conn):  # one writer at a time: nothing to order
                written = [write_checkpoint(conn, item) for item in batch]
            else:
                # Concurrent transactions lock rows: taking them in id order, as lease
                # renewals do, means two writers never deadlock.
                written = [False] * len(batch)
                for n in sorted(range(len(batch)), key=lambda n: batch[n].execution_id):
                    written[n] = write_checkpoint(conn, batch[n])
            notify(
                conn,
                EVENTS_CHANNEL,
                [item.execution_id for item, ok in zip(batch, written, strict=True) if ok],
            )
            return written


def write_checkpoint(conn: Connection, item: Checkpoint) -> bool:
    """Write one execution's checkpoint in the open write transaction; False (and
    nothing written) when ``item.owner`` no longer holds its lease."""
    # The hot path: plain SQL through the driver. Building Core constructs
    # for every checkpoint cost several times more than SQLite itself.
    cursor = driver_cursor(conn)
    release = bool(item.release)
    settle_wake = item.commands_version_seen is not None
    written = (
        item.status,
        json_text(item.state),
        item.updated_at,
        item.started_at,
        item.ended_at,
        item.event_seq,
    )
    wake = (settle_wake, item.commands_version_seen, item.wake_at)
    if item.claim_until is None:
        cursor.execute(
            _UPDATE_EXECUTION,
            (*written, release, release, *wake, item.execution_id, item.owner),
        )
    else:
        lease = (release, item.owner, release, item.claim_until)
        where = (item.execution_id, item.claim_from_seq, item.owner, item.updated_at)
        cursor.execute(_CLAIM_AND_UPDATE_EXECUTION, (*written, *lease, *wake, *where))
    if cursor.rowcount == 0:
        return False
    if item.status in TERMINAL:
        _reject_leftover_commands(cursor, item)
    if item.task_runs:
        cursor.executemany(
            _UPSERT_TASK_RUN,
            [
                (item.execution_id, run["id"], run["task_id"], run["state"], json_text(run))
                for run in item.task_runs
            ],
        )
    if item.events:
        cursor.executemany(
            _INSERT_EVENT,
            [(ev.execution_id, ev.seq, ev.type, ev.at, json_text(ev.data)) for ev in item.events],
        )
    if any(event.type == LABELED_EVENT for event in item.events):
        cursor.execute(_UPDATE_LABELS, (json_text(item.state["labels"]), item.execution_id))
    if item.command_results:
        cursor.executemany(
            _APPLY_COMMAND,
            [
                (
                    "applied" if applied else "rejected",
                    message,
                    state_after,
                    item.updated_at,
                    cid,
                )
                for cid, applied, message, state_after in item.command_results
            ],
        )
    return True


def _reject_leftover_commands(cursor: Any, item: Checkpoint) -> None:
    """Refuse, in the finishing transaction, commands accepted that will never apply.

    A command accepted while the execution was still running can lose the
    race against its last step. Accepting takes the same lock (SQLite's write
    lock, the execution's row on PostgreSQL), so every such command is visible
    here; its ``command.rejected`` event goes before the terminal event, which
    stays the last one.
    """
    decided = {result[0] for result in item.command_results}
    cursor.execute(_PENDING_COMMANDS, (item.execution_id,))
    leftovers = [(cid, kind) for cid, kind in cursor.fetchall() if cid not in decided]
    if not leftovers:
        return
    state = item.status.lower().replace("_", " ")
    results = []
    events = []
    for cid, kind in leftovers:
        message = (
            f"cannot {kind} {state} execution {item.execution_id}: it finished before "
            f"the command was applied"
        )
        results.append((cid, False, message, item.status))
        events.append(
            EventRecord(
                item.execution_id,
                0,
                "command.rejected",
                item.updated_at,
                {"command_id": cid, "kind": kind, "message": message},
            )
        )
    if item.events:
        *body, last = item.events
        ordered = [*body, *events, last]
    else:
        ordered = events
    first_seq = item.event_seq - len(item.events) + 1
    item.events = [
        EventRecord(ev.execution_id, first_seq + n, ev.type, ev.at, ev.data)
        for n, ev in enumerate(ordered)
    ]
    item.event_seq = first_seq + len(item.events) - 1
    item.command_results = [*item.command_results, *results]
    cursor.execute(
        "UPDATE executions SET event_seq = ? WHERE id = ?", (item.event_seq, item.execution_id)
    )
