"""The PostgreSQL store when the server goes away: 503s, reconnection, LISTEN again.

Real servers only: the session's PostgreSQL for killed connections (scoped to the
test's own database), and a private one (``tests/chaos/private_postgres.py``)
for the tests that stop it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence

import pytest
import sqlalchemy.exc

from pausepoint.errors import StoreUnavailable
from pausepoint.service.engine import Engine
from pausepoint.store.access import ApiKeyRecord
from pausepoint.store.dialects import WORK_CHANNEL
from pausepoint.store.postgresql import connection_lost
from pausepoint.store.records import Checkpoint
from pausepoint.store.sql import SqlStore
from pausepoint.testing import assert_eventually, fast_settings
from tests.chaos.private_postgres import PrivatePostgres, own_postgres
from tests.conftest import _run_admin

FLOW = """
id: steps
namespace: outage
tasks:
  - id: first
    type: log
    message: one
  - id: nap
    type: sleep
    duration: PT0.2S
  - id: last
    type: return
    format: done
"""


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    with own_postgres() as server:
        yield server


def kill_connections(admin_url: str, database: str) -> None:
    _run_admin(
        admin_url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE datname = '{database}' AND pid <> pg_backend_pid()",
    )


async def test_a_call_while_the_server_is_down_is_refused_as_unavailable_then_reconnects(
    private_postgres: PrivatePostgres,
) -> None:
    store = SqlStore(private_postgres.database_url("postgres"))
    await store.open()
    try:
        assert await store.get_execution("nothing") is None  # a pooled connection exists
        await asyncio.to_thread(private_postgres.stop, "fast")
        for _ in range(3):  # every call, not only the first: none of them hangs or leaks
            with pytest.raises(StoreUnavailable) as refused:
                await store.get_execution("nothing")
            assert refused.value.message.startswith("the database cannot be reached: ")
            assert refused.value.http_status == 503
        await asyncio.to_thread(private_postgres.start)
        assert await store.get_execution("nothing") is None
    finally:
        await store.close()


async def test_killed_connections_are_replaced_and_constraint_errors_keep_their_meaning(
    postgres_server: str, postgres_url: str
) -> None:
    store = SqlStore(postgres_url)
    await store.open()
    try:
        record = ApiKeyRecord("k1", "default", "admin", "k", "h" * 64, 1.0, None)
        await store.create_api_key(record)
        kill_connections(postgres_server, postgres_url.rsplit("/", 1)[1].split("?")[0])
        # The pooled connection is dead: the ping on checkout replaces it.
        assert await store.get_api_key("k1") is not None
        with pytest.raises(sqlalchemy.exc.IntegrityError) as duplicate:
            await store.create_api_key(record)
        assert not connection_lost(duplicate.value)
    finally:
        await store.close()


async def test_listen_is_re_established_after_its_connection_is_killed_and_catches_up(
    postgres_server: str, postgres_url: str
) -> None:
    store = SqlStore(postgres_url)
    await store.open()
    heard: list[str] = []
    events: list[str] = []
    try:
        assert await store.listen(heard.append, on_events=events.append)
        kill_connections(postgres_server, postgres_url.rsplit("/", 1)[1].split("?")[0])
        # Back: both listeners are told to catch up on what they may have missed...
        await assert_eventually(lambda: "" in heard and "" in events, timeout=20)
        # ...and a notification sent now arrives through the new connection.
        _run_admin(postgres_url, f"NOTIFY {WORK_CHANNEL}, 'after-the-kill'")
        await assert_eventually(lambda: "after-the-kill" in heard, timeout=10)
    finally:
        await store.close()


async def test_a_checkpoint_whose_answer_was_lost_is_not_written_twice(
    postgres_url: str,
) -> None:
    """The connection breaks after COMMIT reached the server: the actor cannot know
    the checkpoint landed. It asks before writing again, so the execution finishes
    with each event once."""
    async with Engine(fast_settings(postgres_url), serve=True) as engine:
        store = engine.store
        real_checkpoint = store.checkpoint
        lost_answers: list[str] = []

        async def commit_then_lose_the_answer(batch: Sequence[Checkpoint]) -> list[bool]:
            await real_checkpoint(batch)
            # Every answer is lost: each checkpoint is asked about, and never written again.
            lost_answers.append("lost")
            raise StoreUnavailable("the database cannot be reached: connection lost")

        store.checkpoint = commit_then_lose_the_answer  # type: ignore[method-assign]
        await engine.put_flow(FLOW)
        execution = await engine.start_execution("outage", "steps")
        view = await engine.wait(execution.id, timeout=30)
        assert view.state == "COMPLETED"
        assert len(lost_answers) >= 2  # the step that sleeps, and the one that finishes
        seqs = [event.seq for event in await engine.events(execution.id)]
        assert seqs == list(range(1, len(seqs) + 1))
