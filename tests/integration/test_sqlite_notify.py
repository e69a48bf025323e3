"""Processes sharing a SQLite file hear of each other's commands and events at once.

Each listening process binds a datagram socket beside the database; what a
write transaction changed is sent to the others once it commits
(``store/sqlite_notify.py``). The runners here poll only every ``SLOW_POLL``
seconds, far longer than the tests wait: only a notification can wake them in
time.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pausepoint.service.engine import Engine
from pausepoint.store.dialects import EVENTS_CHANNEL, NOTIFY_PENDING_KEY, WORK_CHANNEL
from pausepoint.store.sqlite import SqliteDatabase
from pausepoint.store.sqlite_notify import (
    MAX_DATAGRAM,
    Announcer,
    Listener,
    notify_directory,
)
from pausepoint.testing import assert_eventually, fast_settings
from tests.conftest import REPO
from tests.integration.test_postgres_notify import APPROVAL, SLOW_POLL

PROMPTLY = 10.0  # seconds: generous for a loaded machine, far below SLOW_POLL


async def test_a_resume_accepted_by_another_engine_wakes_the_paused_execution(
    db_path: Path,
) -> None:
    async with (
        Engine(fast_settings(db_path, poll_interval=SLOW_POLL), serve=True) as runner,
        Engine(fast_settings(db_path, poll_interval=SLOW_POLL), run_executions=False) as api,
    ):
        await api.put_flow(APPROVAL)
        # Started by the engine that runs nothing: the runner hears of it.
        execution = await api.start_execution("notify", "approval")
        await api.wait(execution.id, until=lambda v: v.state == "PAUSED", timeout=PROMPTLY)
        assert not runner.runs_here(execution.id)  # paused: nobody holds it

        reply = await api.resume(execution.id, actor="api")
        view = await api.wait(execution.id, timeout=PROMPTLY)

    # The reply waited for the runner to apply the resume, woken by its checkpoint.
    assert reply.applied
    assert view.state == "COMPLETED"


async def test_a_follower_hears_of_events_another_engine_commits(db_path: Path) -> None:
    async with (
        Engine(fast_settings(db_path, poll_interval=SLOW_POLL), serve=True) as runner,
        Engine(fast_settings(db_path, poll_interval=SLOW_POLL), run_executions=False) as api,
    ):
        await runner.put_flow(APPROVAL)
        execution = await runner.start_execution("notify", "approval")
        await runner.wait(execution.id, until=lambda v: v.state == "PAUSED", timeout=PROMPTLY)

        async def follow_to_the_end() -> list[str]:
            return [event.type async for event in api.follow(execution.id)]

        following = asyncio.create_task(follow_to_the_end())
        await runner.resume(execution.id)
        seen = await asyncio.wait_for(following, PROMPTLY)

    assert seen[-1] == "workflow.completed"
    assert "workflow.resumed" in seen


RUNNER = textwrap.dedent(
    """
    import asyncio, sys
    from pausepoint.service.engine import Engine
    from pausepoint.testing import fast_settings

    async def main() -> None:
        settings = fast_settings(sys.argv[1], poll_interval=float(sys.argv[2]))
        async with Engine(settings, serve=True):
            print("ready", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

    asyncio.run(main())
    """
)


@contextlib.asynccontextmanager
async def runner_process(db_path: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """An engine that runs executions, in a process of its own, until the block ends."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        RUNNER,
        str(db_path),
        str(SLOW_POLL),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), PROMPTLY * 3)
        assert line == b"ready\n", line
        yield process
    finally:
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), PROMPTLY)
        except TimeoutError:
            process.kill()
            await process.wait()


async def test_commands_and_events_cross_between_processes(db_path: Path) -> None:
    async with (
        runner_process(db_path) as runner,
        Engine(fast_settings(db_path, poll_interval=SLOW_POLL), run_executions=False) as api,
    ):
        await api.put_flow(APPROVAL)
        execution = await api.start_execution("notify", "approval")
        paused = await api.wait(execution.id, until=lambda v: v.state == "PAUSED", timeout=PROMPTLY)

        async def follow_to_the_end() -> list[str]:
            return [event.type async for event in api.follow(execution.id)]

        following = asyncio.create_task(follow_to_the_end())
        reply = await api.resume(execution.id, actor="api")
        seen = await asyncio.wait_for(following, PROMPTLY)
        [command] = await api.commands(execution.id)
        assert runner.returncode is None

    assert paused.state == "PAUSED"
    assert reply.applied
    assert seen[-1] == "workflow.completed"
    assert (command.kind, command.actor, command.status) == ("resume", "api", "applied")


async def test_a_socket_left_by_a_dead_process_is_removed(db_path: Path) -> None:
    async with Engine(fast_settings(db_path), run_executions=False) as engine:
        await engine.put_flow(APPROVAL)
        directory = notify_directory(db_path)
        directory.mkdir(exist_ok=True)
        stale = directory / "999999-deadbeef.sock"
        left = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        left.bind(str(stale))
        left.close()  # its process died without unlinking it
        assert stale.exists()

        async def removed() -> bool:
            await engine.start_execution("notify", "approval")  # a commit that notifies
            return not stale.exists()

        await assert_eventually(removed, timeout=PROMPTLY, what="the stale socket removed")


async def test_a_database_in_memory_cannot_notify() -> None:
    db = SqliteDatabase("sqlite:///:memory:", "NORMAL")
    await db.open()
    try:
        assert not await db.listen(lambda _id: None)
    finally:
        await db.close()


# -- the announcer and the listener, face to face ----------------------------------------


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Announcer, dict[str, list[str]]]]:
    """An announcer and a listener of one directory; what the listener heard, by channel."""
    directory = notify_directory(tmp_path / "pausepoint.db")
    heard: dict[str, list[str]] = {WORK_CHANNEL: [], EVENTS_CHANNEL: []}
    listener = Listener(
        directory,
        {channel: heard[channel].append for channel in (WORK_CHANNEL, EVENTS_CHANNEL)},
    )
    listener.start()
    announcer = Announcer(directory)
    announcer.attach({})
    try:
        yield announcer, heard
    finally:
        announcer.close()
        listener.close()
    assert not Path(listener.path).exists()  # noqa: ASYNC240 - a look at one path


def commit(announcer: Announcer, channel: str, ids: list[str]) -> None:
    announcer._info[NOTIFY_PENDING_KEY].append((channel, ids))
    announcer.committed()


async def heard_all(heard: dict[str, list[str]], channel: str, ids: list[str]) -> None:
    await assert_eventually(
        lambda: set(heard[channel]) >= set(ids), timeout=PROMPTLY, what=f"{len(ids)} ids heard"
    )


async def test_a_commit_reaches_the_listener_once_per_execution(
    pair: tuple[Announcer, dict[str, list[str]]],
) -> None:
    announcer, heard = pair
    commit(announcer, WORK_CHANNEL, ["a", "b", "a"])
    await heard_all(heard, WORK_CHANNEL, ["a", "b"])
    assert sorted(heard[WORK_CHANNEL]) == ["a", "b"]
    assert heard[EVENTS_CHANNEL] == []


async def test_many_ids_are_split_into_datagrams_that_all_arrive(
    pair: tuple[Announcer, dict[str, list[str]]],
) -> None:
    announcer, heard = pair
    ids = [f"execution-{n:08d}-{'x' * 24}" for n in range(3 * MAX_DATAGRAM // 30)]
    commit(announcer, EVENTS_CHANNEL, ids)
    assert announcer.sent > 1
    await heard_all(heard, EVENTS_CHANNEL, ids)


async def test_what_a_full_queue_refused_is_sent_with_the_next_commit(
    pair: tuple[Announcer, dict[str, list[str]]],
) -> None:
    announcer, heard = pair
    # The listener reads only when the loop runs: commit far more than its queue holds.
    ids = [f"e{n}" for n in range(2000)]
    for execution_id in ids:
        commit(announcer, EVENTS_CHANNEL, [execution_id])
    assert announcer.sent < len(ids)  # the kernel refused some: owed
    await assert_eventually(lambda: heard[EVENTS_CHANNEL], what="the queue read")
    commit(announcer, EVENTS_CHANNEL, ["last"])
    await heard_all(heard, EVENTS_CHANNEL, [*ids, "last"])


async def test_nothing_is_sent_while_nobody_listens(tmp_path: Path) -> None:
    announcer = Announcer(notify_directory(tmp_path / "pausepoint.db"))
    announcer.attach({})
    try:
        commit(announcer, WORK_CHANNEL, ["a"])
        assert announcer.sent == 0
    finally:
        announcer.close()
