"""``pausepoint server --workers 2``: HTTP from two child processes, executions in the parent.

The server is a real subprocess on a SQLite file, spoken to over loopback HTTP.
Every process polls only every ``SLOW_POLL`` seconds, far longer than the test
waits: a resume accepted by a worker reaches the parent, and the events the
parent commits reach a worker's SSE follower, only through the notifications
between the processes (``store/sqlite_notify.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from pausepoint.store.sqlite_notify import notify_directory
from pausepoint.testing import assert_eventually
from tests.api.test_server_crash import KEY, ServerProcess

pytestmark = pytest.mark.e2e  # the server as a real subprocess

SLOW_POLL = 60.0
DEADLINE = 30.0  # seconds: generous for a loaded machine, far below SLOW_POLL

APPROVAL = """
id: approval
namespace: workers
tasks:
  - id: before
    type: return
    format: before
  - id: wait
    type: pause
  - id: after
    type: return
    format: after
"""

SERVING = re.compile(r"pausepoint serving (http://\S+) ")


class Server(ServerProcess):
    """The server subprocess, with the admin key it printed."""

    key = ""

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=DEADLINE,
        )


@contextlib.asynccontextmanager
async def server_with_workers(tmp_path: Path, workers: int) -> AsyncIterator[Server]:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "approval.yaml").write_text(APPROVAL)
    env = {
        **os.environ,
        "PAUSEPOINT_POLL_INTERVAL": str(SLOW_POLL),
        "PYTHONUNBUFFERED": "1",
        "COLUMNS": "400",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pausepoint",
        "--db",
        f"sqlite:///{tmp_path / 'pausepoint.db'}",
        "server",
        "--port",
        "0",
        "--workers",
        str(workers),
        "--flows",
        str(flows),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
        cwd=tmp_path,
    )
    server = Server(process, "")
    try:
        server.key = (await server.read_until(KEY))[0]
        server.base_url = (await server.read_until(SERVING))[1]
        yield server
    finally:
        await server.kill()


def http_workers_of(parent: int) -> list[int]:
    """The running HTTP worker processes (spawned children) of process ``parent``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # pid (comm) state ppid …: comm may hold spaces, so split after its ")"
            state, ppid = stat.read_text().rpartition(")")[2].split()[:2]
            cmdline = (stat.parent / "cmdline").read_bytes()
            if int(ppid) == parent and state != "Z" and b"spawn_main" in cmdline:
                found.append(int(stat.parent.name))
    return found


def running(pid: int) -> bool:
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        return state != "Z"
    return False


async def http_workers(server: Server, count: int) -> list[int]:
    """The server's HTTP worker processes, once ``count`` of them run."""

    def all_running() -> list[int]:
        workers = http_workers_of(server.process.pid)
        return workers if len(workers) == count else []

    found: list[int] = await assert_eventually(
        all_running, timeout=DEADLINE, what=f"{count} HTTP workers"
    )
    return found


async def all_exited(pids: list[int]) -> None:
    await assert_eventually(
        lambda: not any(running(pid) for pid in pids),
        timeout=DEADLINE,
        what=f"processes {pids} to exit",
    )


async def healthy(http: httpx.AsyncClient) -> None:
    async def answers() -> bool:
        with contextlib.suppress(httpx.TransportError):
            response = await http.get("/healthz")
            return response.status_code == 200
        return False

    await assert_eventually(answers, timeout=DEADLINE, interval=0.05, what="/healthz")


async def sse_events(http: httpx.AsyncClient, execution_id: str, seen: list[str]) -> None:
    """Follow the execution's SSE stream to its end, noting each event's type."""
    async with http.stream(
        "GET",
        f"/api/v1/executions/{execution_id}/events",
        headers={"Accept": "text/event-stream"},
    ) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                seen.append(line.removeprefix("event:").strip())


async def state_of(http: httpx.AsyncClient, execution_id: str) -> str:
    response = await http.get(f"/api/v1/executions/{execution_id}/state")
    assert response.status_code == 200, response.text
    state: str = response.json()["state"]
    return state


async def test_workers_serve_control_and_sse_while_the_parent_runs_executions(
    tmp_path: Path,
) -> None:
    directory = notify_directory(tmp_path / "pausepoint.db")
    async with server_with_workers(tmp_path, workers=2) as server, server.client() as http:
        workers = await http_workers(server, 2)
        await healthy(http)
        # Each of the three processes listens (the workers, once their engine started).
        await assert_eventually(
            lambda: len(list(directory.glob("*.sock"))) == 3, timeout=DEADLINE, what="3 sockets"
        )

        started = await http.post(
            "/api/v1/executions", json={"namespace": "workers", "flow_id": "approval"}
        )
        assert started.status_code == 201, started.text
        execution_id = started.json()["id"]

        async def paused() -> bool:
            return await state_of(http, execution_id) == "PAUSED"

        await assert_eventually(paused, timeout=DEADLINE, what="PAUSED")

        seen: list[str] = []
        following = asyncio.create_task(sse_events(http, execution_id, seen))
        await assert_eventually(lambda: "workflow.paused" in seen, timeout=DEADLINE)

        resumed = await http.post(f"/api/v1/executions/{execution_id}/resume", json={})
        assert resumed.status_code in (200, 202), resumed.text
        assert resumed.json()["applied"] is True  # the parent applied it while we waited

        await asyncio.wait_for(following, DEADLINE)  # the stream ends after the last event
        assert seen[-1] == "workflow.completed"
        assert "workflow.resumed" in seen
        assert await state_of(http, execution_id) == "COMPLETED"

        # Stopping the server stops its workers, which remove their sockets.
        server.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(server.process.wait(), DEADLINE) == 0
        assert server.process.stdout is not None
        server.output.append((await server.process.stdout.read()).decode())
    await all_exited(workers)
    # Whoever stopped removed its socket; only a worker killed for stopping too slowly
    # (a loaded machine) cannot, and the next process to notify removes that one.
    output = "".join(server.output)
    killed = set(re.findall(r"HTTP worker (\d+) did not stop in time", output))
    left = {path.name.partition("-")[0] for path in directory.glob("*.sock")}
    assert left <= killed, output


async def test_a_worker_that_dies_is_started_again(tmp_path: Path) -> None:
    async with server_with_workers(tmp_path, workers=1) as server, server.client() as http:
        [worker] = await http_workers(server, 1)
        os.kill(worker, signal.SIGKILL)
        await all_exited([worker])

        [replacement] = await http_workers(server, 1)
        assert replacement != worker
        await healthy(http)

        server.process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(server.process.wait(), DEADLINE) == 0
    await all_exited([replacement])


async def test_workers_stop_when_the_server_is_killed(tmp_path: Path) -> None:
    async with server_with_workers(tmp_path, workers=2) as server:
        workers = await http_workers(server, 2)
        server.process.kill()  # no chance to stop them: they notice by themselves
        await server.process.wait()
        await all_exited(workers)
