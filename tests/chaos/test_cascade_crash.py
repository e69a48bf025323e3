"""A cascade cut short by SIGKILL completes after the restart.

A three-level tree with parallel children (a root, two middles, four leaves)
runs in a serving worker process. Pause, cancel or terminate is sent to the
root over HTTP, and the worker is SIGKILLed the moment it answers: the cascade
down the tree is then in the middle of being sent. A new worker takes the
executions over; its sweep completes the cascade. After a cancel or a
terminate, nothing below the root runs again; after a pause, the whole tree
stands still until the root is resumed, and then completes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from pausepoint.config import Settings
from pausepoint.service.engine import Engine
from tests.api.conftest import free_port
from tests.chaos.workers import WorkerProcess, start_worker

# A cascade command carries its idempotency key to the command alone (no HTTP-style
# reservation a killed worker could leave "in progress"), so the new worker's sweep
# completes the cascade within a few sweeps: the leaves' six-second sleep would end
# otherwise, and the cancel and terminate checks would see them COMPLETED.
TIMEOUT = 50.0

LEAF = """
id: leaf
namespace: chaos.tree
clock: FREEZE
tasks:
  - id: work
    type: sleep
    duration: PT6S
  - id: after
    type: return
    format: leaf done
"""

MIDDLE = """
id: middle
namespace: chaos.tree
tasks:
  - id: both
    type: parallel
    tasks:
      - id: left
        type: subflow
        namespace: chaos.tree
        flowId: leaf
      - id: right
        type: subflow
        namespace: chaos.tree
        flowId: leaf
  - id: after
    type: return
    format: middle done
"""

ROOT = MIDDLE.replace("id: middle", "id: root").replace("flowId: leaf", "flowId: middle")


def client_settings(db_path: Path) -> Settings:
    return Settings(db=f"sqlite:///{db_path}", poll_interval=0.05, command_wait_timeout=0.5)


@contextlib.asynccontextmanager
async def workers() -> AsyncIterator[list[WorkerProcess]]:
    """The workers a test starts; every one still alive is killed at the end."""
    started: list[WorkerProcess] = []
    try:
        yield started
    finally:
        for worker in started:
            await worker.kill()


async def spawn(started: list[WorkerProcess], db_url: str, workdir: Path) -> WorkerProcess:
    log = workdir / f"worker-{len(started) + 1}.stderr"
    worker = start_worker(db_url, workdir / "runs.jsonl", log, port=free_port())
    started.append(worker)
    await worker.wait_ready()
    return worker


async def tree_states(client: Engine, root_id: str) -> dict[str, str]:
    records = await client.list_executions(root_id=root_id, limit=100)
    return {record.id: record.status for record in records}


async def _root_in(client: Engine, root_id: str, state: str) -> bool:
    return (await client.execution(root_id)).state == state


async def until(
    check: Callable[[], Awaitable[bool]], what: str, started: list[WorkerProcess]
) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    logs = "\n".join(worker.log_tail() for worker in started)
    raise AssertionError(f"{what} did not happen within {TIMEOUT}s\n{logs}")


@pytest.mark.parametrize("verb", ["pause", "resume", "cancel", "terminate"])
async def test_a_cascade_cut_short_by_sigkill_completes_after_the_restart(
    tmp_path: Path, verb: str
) -> None:
    db = tmp_path / "tree.db"
    async with (
        Engine(client_settings(db), run_executions=False) as client,
        workers() as started,
    ):
        for source in (LEAF, MIDDLE, ROOT):
            await client.put_flow(source)
        key, _ = await client.create_api_key("operator", "cascade crash")
        first = await spawn(started, client.settings.db, tmp_path)
        root = await client.start_execution("chaos.tree", "root")

        async def whole_tree_runs() -> bool:
            states = await tree_states(client, root.id)
            return len(states) == 6 and set(states.values()) == {"RUNNING"}

        await until(whole_tree_runs, "the tree of six children running", started)
        if verb == "resume":
            # Held first (no crash), so that the resume's cascade is what gets cut short.
            await client.pause(root.id)

            async def tree_held() -> bool:
                return set((await tree_states(client, root.id)).values()) == {"PAUSED"}

            await until(tree_held, "every child PAUSED before the resume", started)
            await until(lambda: _root_in(client, root.id, "PAUSED"), "the root PAUSED", started)
        body = {"reason": "cut short"} if verb in ("cancel", "terminate") else {}
        async with httpx.AsyncClient(headers={"X-API-Key": key}, timeout=30) as http:
            reply = await http.post(
                f"http://127.0.0.1:{first.port}/api/v1/executions/{root.id}/{verb}", json=body
            )
        await first.kill()  # the cascade down the tree is under way, or not yet begun
        assert reply.status_code in (200, 202), reply.text
        await spawn(started, client.settings.db, tmp_path)

        if verb == "resume":
            view = await client.wait(root.id, timeout=TIMEOUT)
            assert view.state == "COMPLETED", view.error
            assert set((await tree_states(client, root.id)).values()) == {"COMPLETED"}
            return

        if verb == "pause":

            async def all_paused() -> bool:
                states = await tree_states(client, root.id)
                view = await client.execution(root.id)
                return view.state == "PAUSED" and set(states.values()) == {"PAUSED"}

            await until(all_paused, "every execution of the tree PAUSED", started)
            frozen = {
                held: len((await client.execution(held)).task_runs)
                for held in await tree_states(client, root.id)
            }
            await asyncio.sleep(1.0)
            for held, count in frozen.items():
                assert len((await client.execution(held)).task_runs) == count, held
            await client.resume(root.id)
            view = await client.wait(root.id, timeout=TIMEOUT)
            assert view.state == "COMPLETED", view.error
            assert set((await tree_states(client, root.id)).values()) == {"COMPLETED"}
            return

        ended = "CANCELLED" if verb == "cancel" else "TERMINATED"

        async def all_ended() -> bool:
            states = await tree_states(client, root.id)
            view = await client.execution(root.id)
            return view.state == ended and set(states.values()) <= {"CANCELLED", "TERMINATED"}

        await until(all_ended, f"the whole tree {ended}", started)
        await asyncio.sleep(1.0)  # time for anything that would wrongly start again
        for child_id in await tree_states(client, root.id):
            child = await client.execution(child_id)
            assert child.state in ("CANCELLED", "TERMINATED"), (child_id, child.state)
            # Nothing after the cut ran: no `after` task, no subflow started again.
            assert all(run.task_id != "after" for run in child.task_runs), child.task_runs
        assert len(await tree_states(client, root.id)) == 6
