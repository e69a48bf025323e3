"""The SQL store: SQLAlchemy Core on SQLite (WAL) or PostgreSQL (asyncpg).

``SqlStore`` is what the rest of pausepoint calls. It composes two kinds of
parts:

- one :class:`~pausepoint.store.database.Database` per store, for its dialect
  (``store/sqlite.py``, ``store/postgresql.py``): it owns the connections, where
  statements run and what a read or write transaction is;
- small repositories by concept, which hold the SQL as synchronous functions:
  ``flows``, ``executions`` (with task runs and events), ``checkpoints``,
  ``leases``, ``commands``, ``access`` (API keys, secrets, idempotency), ``files``
  and ``kv`` (Kestra's internal storage and key-value store).

Each method below hands one repository function to ``Database.run``: a place in
the next batch on the event loop's thread (SQLite) or one pooled connection
(PostgreSQL) per call, and the function's one transaction inside it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from sqlalchemy.engine import Connection

from pausepoint.errors import InvalidInput
from pausepoint.store import wal
from pausepoint.store.access import (
    ApiKeyRecord,
    ApiKeys,
    IdempotencyKeys,
    IdempotencyRecord,
    Secrets,
)
from pausepoint.store.checkpoints import Checkpoints
from pausepoint.store.commands import CommandDecider, Commands
from pausepoint.store.database import Database
from pausepoint.store.dialects import SQLITE, dialect_of
from pausepoint.store.executions import Executions, Occupancy
from pausepoint.store.files import Files
from pausepoint.store.flows import Flows
from pausepoint.store.kv import KeyValues
from pausepoint.store.leases import Leases, Loaded
from pausepoint.store.links import ChildRow, ExecutionLink, Links
from pausepoint.store.logs import LogFilter, LogLines
from pausepoint.store.postgresql import PostgresDatabase
from pausepoint.store.purge import PurgeCounts, Purges, PurgeScope
from pausepoint.store.records import (
    Checkpoint,
    CommandRecord,
    EventRecord,
    ExecutionRecord,
    FlowRecord,
)
from pausepoint.store.sqlite import SqliteDatabase, sqlite_path
from pausepoint.store.triggers import EndedRow, TriggerKey, TriggerRecord, Triggers, TriggerSpec

R = TypeVar("R")

__all__ = ["CommandDecider", "SqlStore", "create_store", "sqlite_path"]


def create_store(url: str, *, sqlite_synchronous: str = "NORMAL") -> SqlStore:
    """The store for a database URL, not yet opened.

    ``sqlite:///PATH`` or ``postgresql://USER:PASSWORD@HOST[:PORT]/DATABASE``
    (``postgresql+asyncpg://`` too; ``?host=/dir`` names a unix socket
    directory). Any other URL raises ``InvalidInput`` naming it.
    """
    return SqlStore(url, synchronous=sqlite_synchronous)


class SqlStore:
    """Durable storage for flows, executions, task runs, events and commands.

    ``url`` is ``sqlite:///PATH`` or ``postgresql://USER:PASSWORD@HOST/DB``
    (also ``postgresql+asyncpg://``); anything else raises ``InvalidInput``.
    """

    def __init__(self, url: str, *, synchronous: str = "NORMAL") -> None:
        self.dialect = dialect_of(url)
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise InvalidInput(f"sqlite_synchronous must be NORMAL or FULL, got {synchronous!r}")
        self.url = url
        self.synchronous = synchronous.upper()
        db: Database
        if self.dialect == SQLITE:
            db = SqliteDatabase(url, self.synchronous)
        else:
            db = PostgresDatabase(url)
        self._db = db
        self._flows = Flows(db)
        self._executions = Executions(db)
        self._checkpoints = Checkpoints(db)
        self._leases = Leases(db)
        self._commands = Commands(db)
        self._api_keys = ApiKeys(db)
        self._secrets = Secrets(db)
        self._idempotency = IdempotencyKeys(db)
        self._triggers = Triggers(db)
        self._links = Links(db)
        self._files = Files(db)
        self._kv = KeyValues(db)
        self._logs = LogLines(db)
        self._purges = Purges(db)

    # -- lifecycle -------------------------------------------------------------

    async def open(self) -> None:
        """Connect and bring the schema to the newest migration."""
        await self._db.open()

    async def close(self) -> None:
        await self._db.close()

    async def listen(
        self,
        on_work: Callable[[str], None],
        *,
        on_events: Callable[[str], None] | None = None,
    ) -> bool:
        """Call ``on_work(execution_id)`` (in the loop) whenever any process accepts a
        command for an execution or leaves one for others to run, and
        ``on_events(execution_id)`` whenever any process commits new events.

        PostgreSQL notifies through LISTEN/NOTIFY, a SQLite file through Unix
        datagram sockets beside it (``store/sqlite_notify.py``); both are best
        effort, and polling still finds what a lost notification did not tell.
        Returns False when the database cannot notify (SQLite ``:memory:``): then
        such changes are found only by polling. On PostgreSQL a lost listening
        connection (a restart, a killed backend) is re-established with back-off,
        and then both callbacks are called with ``""``: notifications sent
        meanwhile are lost, so the listener looks for work and re-reads what it
        follows at once instead of waiting for its poll.
        """
        return await self._db.listen(on_work, on_events=on_events)

    # Reached by tests that look at the database from its own thread.
    async def _call(self, fn: Callable[..., R], *args: Any) -> R:
        return await self._db.run(fn, *args)

    def _read(self) -> AbstractContextManager[Connection]:
        return self._db.read()

    @property
    def _wal(self) -> wal.WalCheckpointer | None:
        return self._db.wal if isinstance(self._db, SqliteDatabase) else None

    # -- flows -----------------------------------------------------------------

    async def put_flow(
        self, org_id: str, namespace: str, flow_id: str, source: str, now: float
    ) -> FlowRecord:
        """Store a new revision, or return the latest one if the source is unchanged.

        Concurrent writers of one flow (several servers on PostgreSQL) each get
        their own revision: the one that loses the insert race reads again.
        """
        return await self._db.run(self._flows.put, org_id, namespace, flow_id, source, now)

    async def get_flow(
        self, org_id: str, namespace: str, flow_id: str, revision: int | None = None
    ) -> FlowRecord | None:
        """The given revision, or the latest one unless the flow was deleted."""
        return await self._db.run(self._flows.get, org_id, namespace, flow_id, revision)

    async def latest_revision(self, org_id: str, namespace: str, flow_id: str) -> int | None:
        """The newest revision's number (None if the flow does not exist or was deleted)."""
        return await self._db.run(self._flows.latest_revision, org_id, namespace, flow_id)

    async def list_flows(self, org_id: str) -> list[FlowRecord]:
        """The latest revision of every flow not deleted, by namespace and id."""
        return await self._db.run(self._flows.list_latest, org_id)

    # -- triggers ------------------------------------------------------------------

    async def sync_triggers(
        self, org_id: str, namespace: str, flow_id: str, specs: list[TriggerSpec], now: float
    ) -> None:
        """Make a flow's trigger rows match its definition (state kept where unchanged)."""
        await self._db.run(self._triggers.sync, org_id, namespace, flow_id, specs, now)

    async def remove_triggers(self, org_id: str, namespace: str, flow_id: str) -> None:
        await self._db.run(self._triggers.remove_flow, org_id, namespace, flow_id)

    async def flow_triggers(self, org_id: str, namespace: str, flow_id: str) -> list[TriggerRecord]:
        return await self._db.run(self._triggers.of_flow, org_id, namespace, flow_id)

    async def flow_trigger_rows(self) -> list[TriggerRecord]:
        """Every Flow trigger, in every organization."""
        return await self._db.run(self._triggers.of_type, "flow")

    async def get_trigger(self, key: TriggerKey) -> TriggerRecord | None:
        return await self._db.run(self._triggers.get, key)

    async def due_triggers(self, now: float, limit: int = 100) -> list[TriggerRecord]:
        return await self._db.run(self._triggers.due, now, limit)

    async def advance_trigger(self, record: TriggerRecord, **values: Any) -> bool:
        """Update a trigger row only if no one changed it since ``record`` was read."""
        return await self._db.run(lambda: self._triggers.advance(record, **values))

    async def update_trigger(self, key: TriggerKey, **values: Any) -> bool:
        return await self._db.run(lambda: self._triggers.update(key, **values))

    async def take_scheduler_lease(self, name: str, owner: str, ttl: float, now: float) -> bool:
        return await self._db.run(self._triggers.take_lease, name, owner, ttl, now)

    async def release_scheduler_lease(self, name: str, owner: str) -> None:
        await self._db.run(self._triggers.release_lease, name, owner)

    async def scheduler_cursor(self, name: str) -> float | None:
        return await self._db.run(self._triggers.cursor, name)

    async def set_scheduler_cursor(self, name: str, owner: str, cursor_at: float) -> None:
        await self._db.run(self._triggers.set_cursor, name, owner, cursor_at)

    async def ended_since(self, after: float, limit: int = 200) -> list[EndedRow]:
        """Executions that ended at or after ``after``, oldest first (for Flow triggers)."""
        return await self._db.run(self._triggers.ended_since, after, limit)

    async def delete_flow(self, org_id: str, namespace: str, flow_id: str) -> bool:
        """Mark every revision deleted; False if there was nothing to delete."""
        return await self._db.run(self._flows.delete, org_id, namespace, flow_id)

    # -- executions --------------------------------------------------------------

    async def create_execution(self, record: ExecutionRecord, checkpoint: Checkpoint) -> bool:
        """Store a new execution; False (and nothing written) if its id exists already."""
        return await self._db.run(self._executions.create, record, checkpoint)

    async def get_execution(self, execution_id: str) -> ExecutionRecord | None:
        return await self._db.run(self._executions.get, execution_id)

    async def list_executions(
        self,
        org_id: str,
        *,
        statuses: Sequence[str] = (),
        namespace: str | None = None,
        flow_id: str | None = None,
        labels: dict[str, str] | None = None,
        limit: int = 50,
        before: tuple[float, str] | None = None,
        parent_id: str | None = None,
        root_id: str | None = None,
    ) -> list[ExecutionRecord]:
        """Newest first; ``before`` is the (created_at, id) of the last row of the previous page.

        ``parent_id`` keeps the executions that execution's subflow tasks started;
        ``root_id`` every descendant of that execution (not the root itself).
        """
        return await self._db.run(
            self._executions.page,
            org_id,
            statuses,
            namespace,
            flow_id,
            labels,
            limit,
            before,
            parent_id,
            root_id,
        )

    # -- execution trees (subflows) ----------------------------------------------------

    async def link_child(self, link: ExecutionLink) -> ExecutionLink:
        """Record which task run starts ``link.child_id``; the stored link if there is one."""
        return await self._db.run(self._links.add, link)

    async def execution_link(self, child_id: str) -> ExecutionLink | None:
        return await self._db.run(self._links.get, child_id)

    async def children(self, parent_id: str) -> list[ChildRow]:
        return await self._db.run(self._links.children, parent_id)

    async def tree_links(self, root_id: str) -> list[ExecutionLink]:
        """Every parent-child link of the tree whose root is ``root_id``."""
        return await self._db.run(self._links.tree, root_id)

    async def ended_unheard_children(self, limit: int = 200) -> list[ExecutionLink]:
        """Children that ended, whose waiting parent has not accepted their end yet."""
        return await self._db.run(self._links.ended_unheard, limit)

    async def running_attached_children(self, limit: int = 1000) -> list[ExecutionLink]:
        """Children still running whose parent waits for them."""
        return await self._db.run(self._links.running_attached, limit)

    async def stopped_children_of_pausing(self, limit: int = 1000) -> list[ExecutionLink]:
        return await self._db.run(self._links.stopped_under_pausing, limit)

    async def mark_child_heard(self, child_id: str, at: float) -> None:
        await self._db.run(self._links.mark_heard, child_id, at)

    async def detach_child(self, child_id: str) -> None:
        """Its parent stopped without cascading: the child goes on by itself."""
        await self._db.run(self._links.detach, child_id)

    async def note_cascade_error(self, child_id: str, error: str) -> None:
        """Record that a cascade could not reach ``child_id`` (shown in its parent's tree)."""
        await self._db.run(self._links.note_cascade_error, child_id, error[:1000])

    # -- internal storage ---------------------------------------------------------------

    async def put_file(self, org_id: str, uri: str, content: bytes, now: float) -> None:
        """Store ``content`` at ``uri`` (replacing what was there)."""
        await self._db.run(self._files.put, org_id, uri, content, now)

    async def get_file(self, org_id: str, uri: str) -> bytes | None:
        return await self._db.run(self._files.get, org_id, uri)

    # -- key-value store -----------------------------------------------------------------

    async def put_kv(
        self,
        org_id: str,
        namespace: str,
        key: str,
        value: Any,
        *,
        overwrite: bool,
        expires_at: float | None,
        description: str | None,
        now: float,
    ) -> bool:
        """Set a key of a namespace; False when ``overwrite`` is false and it has a value."""
        return await self._db.run(
            lambda: self._kv.put(
                org_id,
                namespace,
                key,
                value,
                overwrite=overwrite,
                expires_at=expires_at,
                description=description,
                now=now,
            )
        )

    async def get_kv(self, org_id: str, namespace: str, key: str, now: float) -> tuple[bool, Any]:
        """``(True, value)`` for a key with a value that has not expired, else ``(False, None)``."""
        return await self._db.run(self._kv.get, org_id, namespace, key, now)

    async def delete_kv(self, org_id: str, namespace: str, key: str, now: float) -> bool:
        """Remove a key; whether it had a value that had not expired."""
        return await self._db.run(self._kv.delete, org_id, namespace, key, now)

    async def purge_logs(self, which: LogFilter, *, page: int = 500) -> int:
        """Remove the log lines ``which`` selects from executions' events (the events
        stay), a page of events per transaction; how many lines went."""
        removed, after = 0, ("", -1)
        while True:
            count, upcoming = await self._db.run(self._logs.purge_page, which, after, page)
            removed += count
            if upcoming is None:
                return removed
            after = upcoming

    async def purge_executions(
        self, scope: PurgeScope, *, dry_run: bool = False, batch: int = 50
    ) -> PurgeCounts:
        """Remove the ended executions ``scope`` selects with their events, task runs,
        commands, links, files and idempotency records (``store/purge.py``), ``batch``
        executions per transaction; with ``dry_run`` count them and delete nothing.

        Between batches the loop gets a turn, so checkpoints commit in between (on SQLite
        every write shares the event loop's thread)."""
        counts = PurgeCounts()
        after: tuple[float, str] | None = None
        while True:
            found, upcoming = await self._db.run(
                self._purges.purge_batch, scope, after, batch, dry_run
            )
            counts.add(found)
            if upcoming is None:
                return counts
            after = upcoming
            await asyncio.sleep(0)

    async def occupancy(
        self, org_id: str, namespace: str, flow_id: str, slot_since: float | None = None
    ) -> Occupancy:
        """A flow's running executions and its queue, for its concurrency limit.

        With ``slot_since``, executions that took their slot before it no longer count.
        """
        return await self._db.run(
            self._executions.occupancy, org_id, namespace, flow_id, slot_since
        )

    async def queued_flows(self) -> list[tuple[str, str, str]]:
        """(org, namespace, flow) of every flow with a QUEUED execution."""
        return await self._db.run(self._executions.queued_flows)

    async def count_executions_by_state(self) -> dict[str, int]:
        """Executions per state, across all organizations (for metrics)."""
        return await self._db.run(self._executions.count_by_state)

    async def load_task_runs(self, execution_id: str) -> list[dict[str, Any]]:
        return await self._db.run(self._executions.task_runs, execution_id)

    async def read_events(
        self, execution_id: str, *, after: int = 0, limit: int = 1000
    ) -> list[EventRecord]:
        """The execution's events after sequence number ``after``, in order."""
        return await self._db.run(self._executions.events, execution_id, after, limit)

    # -- runtime: checkpoints and leases -------------------------------------------

    @property
    def batches_calls(self) -> bool:
        """Whether calls made in one turn of the loop share a transaction already (SQLite)."""
        return self._db.batches_calls

    async def checkpoint(self, batch: Sequence[Checkpoint]) -> list[bool]:
        """Commit many executions' checkpoints in one transaction (group commit).

        Returns, per checkpoint, whether it was written; ``False`` means the
        writer no longer holds the execution's lease.
        """
        return await self._db.run(self._checkpoints.commit, batch)

    async def claim(self, execution_id: str, owner: str, ttl: float, now: float) -> bool:
        """Take the lease if it is free or expired (or already ours)."""
        return await self._db.run(self._leases.claim, execution_id, owner, ttl, now)

    async def claim_and_load(
        self, execution_id: str, owner: str, ttl: float, now: float, known_seq: int | None
    ) -> Loaded | None:
        """Claim the lease and read what running the execution needs, in one transaction.

        Task runs are read only when the caller's copy (at event ``known_seq``)
        is stale; ``None`` means the lease is held by a live process.
        """
        return await self._db.run(
            self._leases.claim_and_load, execution_id, owner, ttl, now, known_seq
        )

    async def find_work(self, owner: str, now: float, limit: int = 100) -> list[tuple[str, bool]]:
        """Executions someone should look at now: (id, already ours)."""
        return await self._db.run(self._leases.find_work, owner, now, limit)

    async def settle_wake(self, execution_id: str, owner: str, commands_version: int) -> None:
        """Clear ``wake_at`` of an execution we run, unless a newer command arrived."""
        await self._db.run(self._leases.settle_wake, execution_id, owner, commands_version)

    async def renew_leases(self, owner: str, ttl: float, now: float) -> None:
        """Extend every lease ``owner`` holds to ``now + ttl``."""
        await self._db.run(self._leases.renew, owner, ttl, now)

    async def release_leases(self, owner: str, wake_at: float) -> None:
        """Let go of everything ``owner`` holds (graceful shutdown): others may take over now."""
        await self._db.run(self._leases.release, owner, wake_at)

    # -- commands ----------------------------------------------------------------

    async def accept_command(
        self,
        execution_id: str,
        idempotency_key: str | None,
        decide: CommandDecider,
        now: float,
        *,
        org_id: str | None = None,
    ) -> tuple[CommandRecord, bool, int]:
        """Record a command durably; return it, whether it replays an earlier request, and
        the execution's commands version after it (so the runner can settle its wake-up).

        ``decide`` runs inside the write transaction with the execution and its
        pending commands, so admission and recording are atomic. Raises
        ``NotFound`` when the execution does not exist (in ``org_id``, if given).
        """
        return await self._db.run(
            self._commands.accept, execution_id, idempotency_key, decide, now, org_id
        )

    async def pending_commands(self, execution_id: str) -> tuple[list[CommandRecord], int]:
        """Unapplied commands in acceptance order, and the commands version they reflect."""
        return await self._db.run(self._commands.pending, execution_id)

    async def get_command(self, command_id: str) -> CommandRecord | None:
        return await self._db.run(self._commands.get, command_id)

    async def list_commands(self, execution_id: str) -> list[CommandRecord]:
        """Every command of the execution, in acceptance order."""
        return await self._db.run(self._commands.of_execution, execution_id)

    # -- API keys ------------------------------------------------------------------

    async def create_api_key(self, record: ApiKeyRecord) -> None:
        await self._db.run(self._api_keys.create, record)

    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        return await self._db.run(self._api_keys.get, key_id)

    async def list_api_keys(self, org_id: str | None = None) -> list[ApiKeyRecord]:
        """Oldest first; every organization's unless ``org_id`` is given."""
        return await self._db.run(self._api_keys.list_all, org_id)

    async def revoke_api_key(self, key_id: str, now: float, org_id: str | None = None) -> bool:
        """False if there is no such live key (in ``org_id``, if given)."""
        return await self._db.run(self._api_keys.revoke, key_id, now, org_id)

    async def count_api_keys(self) -> int:
        return await self._db.run(self._api_keys.count)

    # -- secrets -------------------------------------------------------------------

    async def put_secret(self, org_id: str, name: str, sealed: str, now: float) -> None:
        await self._db.run(self._secrets.put, org_id, name, sealed, now)

    async def delete_secret(self, org_id: str, name: str) -> bool:
        return await self._db.run(self._secrets.delete, org_id, name)

    async def sealed_secrets(self, org_id: str) -> dict[str, tuple[str, float]]:
        """Name → (sealed value, updated_at) for one organization."""
        return await self._db.run(self._secrets.sealed, org_id)

    # -- idempotency -----------------------------------------------------------------

    async def claim_idempotency(self, record: IdempotencyRecord) -> IdempotencyRecord | None:
        """Reserve ``record.key`` for this request (None) or return whoever holds it.

        The reservation is a row with ``status_code`` 0, inserted unless the key
        exists (``ON CONFLICT DO NOTHING``), so concurrent requests with one key
        cannot both proceed, in one process or several.
        """
        return await self._db.run(self._idempotency.claim, record)

    async def complete_idempotency(
        self, org_id: str, key: str, status_code: int, response: Any
    ) -> None:
        """Store the answer to the reserved request, for its retries to replay."""
        await self._db.run(self._idempotency.complete, org_id, key, status_code, response)

    async def release_idempotency(
        self, org_id: str, key: str, claimed_at: float | None = None
    ) -> None:
        """Drop an unfinished reservation (the request failed): a retry may try again.

        With ``claimed_at``, only the reservation made then: one whose claim may or may
        not have landed (its answer was lost) is freed without touching a retry's."""
        await self._db.run(self._idempotency.release, org_id, key, claimed_at)
