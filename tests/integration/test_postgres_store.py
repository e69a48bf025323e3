"""Two stores on one PostgreSQL database, as two servers would share it.

On SQLite one writer at a time is the rule; on PostgreSQL calls run
concurrently, here and in other processes. These tests race the writes that
must stay serialised per execution: accepting commands, finishing, leases.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pausepoint.errors import Conflict
from pausepoint.store.access import IdempotencyRecord
from pausepoint.store.records import Checkpoint, CommandRecord, EventRecord, ExecutionRecord
from pausepoint.store.sql import SqlStore
from tests.integration.test_store import execution_record

ROUNDS = 40


@pytest.fixture
async def stores(postgres_url: str) -> AsyncIterator[tuple[SqlStore, SqlStore]]:
    first, second = SqlStore(postgres_url), SqlStore(postgres_url)
    await first.open()
    await second.open()
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


def nothing_yet(execution_id: str, owner: str) -> Checkpoint:
    return Checkpoint(execution_id, owner, "RUNNING", {"status": "RUNNING"}, 100.0, None, 100.0)


async def create_running(store: SqlStore, execution_id: str, owner: str = "runner") -> None:
    await store.create_execution(
        execution_record(execution_id, 100.0, owner), nothing_yet(execution_id, owner)
    )


def toggle(record: ExecutionRecord, pending: list[CommandRecord]) -> dict[str, Any]:
    """Pause unless the last pending command is a pause, then resume: needs a serial history."""
    if record.status == "COMPLETED":
        raise Conflict(f"cannot pause completed execution {record.id}")
    kind = "resume" if pending and pending[-1].kind == "pause" else "pause"
    return {"id": uuid.uuid4().hex, "kind": kind, "payload": {"n": len(pending)}, "actor": "t"}


async def test_conflicting_commands_through_two_stores_form_one_serial_history(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    first, second = stores
    await create_running(first, "e1")

    results = await asyncio.gather(
        *(stores[n % 2].accept_command("e1", None, toggle, 200.0 + n) for n in range(ROUNDS))
    )

    commands = await first.list_commands("e1")
    assert [c.seq for c in commands] == list(range(1, ROUNDS + 1))
    assert [c.kind for c in commands] == ["pause", "resume"] * (ROUNDS // 2)
    assert [c.payload["n"] for c in commands] == list(range(ROUNDS))
    assert len({c.id for c in commands}) == ROUNDS
    assert sorted(version for _, _, version in results) == list(range(1, ROUNDS + 1))
    record = await second.get_execution("e1")
    assert record is not None and record.commands_version == ROUNDS


async def test_one_idempotency_key_sent_to_two_stores_at_once_records_one_command(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    await create_running(stores[0], "e1")

    results = await asyncio.gather(
        *(stores[n % 2].accept_command("e1", "retry-me", toggle, 200.0) for n in range(10))
    )

    [command] = await stores[1].list_commands("e1")
    assert {record.id for record, _, _ in results} == {command.id}
    assert sorted(replayed for _, replayed, _ in results) == [False] + [True] * 9


async def test_commands_racing_the_last_checkpoint_are_each_rejected_once(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    runner, server = stores
    await create_running(runner, "e1")
    finish = Checkpoint(
        "e1",
        "runner",
        "COMPLETED",
        {"status": "COMPLETED"},
        100.0,
        300.0,
        300.0,
        events=[EventRecord("e1", 1, "workflow.completed", 300.0, {})],
        event_seq=1,
        release=True,
    )

    async def accept(n: int) -> bool:
        try:
            await server.accept_command("e1", None, toggle, 200.0 + n)
        except Conflict:
            return False
        return True

    accepted, written = await asyncio.gather(
        asyncio.gather(*(accept(n) for n in range(ROUNDS // 2))), runner.checkpoint([finish])
    )

    assert written == [True]
    commands = await server.list_commands("e1")
    assert len(commands) == sum(accepted)
    assert all(c.status == "rejected" and c.state_after == "COMPLETED" for c in commands)
    events = await server.read_events("e1")
    assert [e.seq for e in events] == list(range(1, len(commands) + 2))
    assert [e.type for e in events] == ["command.rejected"] * len(commands) + ["workflow.completed"]


async def test_an_expired_lease_is_taken_over_by_exactly_one_store(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    first, second = stores
    for n in range(ROUNDS // 4):
        execution_id = f"e{n}"
        await create_running(first, execution_id, "crashed")
        assert not await first.claim(execution_id, "a", ttl=10, now=105.0)  # still live

        won = await asyncio.gather(
            first.claim(execution_id, "a", ttl=10, now=111.0),
            second.claim(execution_id, "b", ttl=10, now=111.0),
        )

        assert sorted(won) == [False, True]
        winner, loser = ("a", "b") if won[0] else ("b", "a")
        written = await second.checkpoint(
            [nothing_yet(execution_id, loser), nothing_yet(execution_id, winner)]
        )
        assert written == [False, True]
        record = await first.get_execution(execution_id)
        assert record is not None and record.lease_owner == winner


async def test_renewing_leases_while_group_commits_lock_the_same_rows_never_deadlocks(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    first, second = stores
    ids = [f"e{n:02d}" for n in range(30)]
    for execution_id in ids:
        await create_running(first, execution_id, "me")

    for round_ in range(10):
        batch = [nothing_yet(execution_id, "me") for execution_id in reversed(ids)]
        written, *_ = await asyncio.gather(
            first.checkpoint(batch),
            second.renew_leases("me", ttl=10, now=100.0 + round_),
            first.renew_leases("me", ttl=10, now=100.0 + round_),
        )
        assert written == [True] * len(ids)


async def test_concurrent_writers_of_one_flow_each_get_a_revision(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    records = await asyncio.gather(
        *(stores[n % 2].put_flow("default", "ns", "f", f"id: f # {n}", 1.0) for n in range(10))
    )
    assert sorted(r.revision for r in records) == list(range(1, 11))


async def test_one_idempotency_key_is_reserved_by_exactly_one_request(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    record = IdempotencyRecord("default", "key", "POST", "/x", "hash", 0, None, 1.0)
    held = await asyncio.gather(*(stores[n % 2].claim_idempotency(record) for n in range(10)))
    assert held.count(None) == 1


async def test_a_listener_hears_of_commands_and_events_committed_through_another_store(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    first, second = stores
    work: asyncio.Queue[str] = asyncio.Queue()
    events: asyncio.Queue[str] = asyncio.Queue()
    assert await second.listen(work.put_nowait, on_events=events.put_nowait)
    await create_running(first, "e1")

    await first.accept_command("e1", None, toggle, 200.0)
    assert await asyncio.wait_for(work.get(), 5) == "e1"

    step = nothing_yet("e1", "runner")
    step.events, step.event_seq = [EventRecord("e1", 1, "task.started", 201.0, {})], 1
    assert await first.checkpoint([step]) == [True]
    assert await asyncio.wait_for(events.get(), 5) == "e1"
    assert work.empty()
