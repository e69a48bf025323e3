"""pausepoint on Temporal, next to the hand-written baseline on the same dev server.

The same two workloads as ``temporal_bench.py``: N sequential steps (each a
Temporal activity: a ``python`` task, which pausepoint runs as an activity),
and a paused execution whose resume is timed until the next step starts. The
API engine (TemporalRuntime) and a worker run in this process, as in the tests;
the store is a SQLite file (``--db`` in production points at PostgreSQL).

The dev server's latency swings a lot on this machine (plain Temporal's resume p50
was 32 ms in one run and 77 ms in the next), so the resumes of both sides are taken
in alternating rounds: each round's plain resumes and pausepoint's see the same
server and the same machine, and the medians compare like with like.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_tasks  # noqa: E402
import temporal_bench  # noqa: E402
from peers.common import latency_summary  # noqa: E402
from temporal_bench import SETTLE_SECONDS  # noqa: E402
from temporalio.client import Client  # noqa: E402

from pausepoint import Engine, Settings  # noqa: E402
from pausepoint.service.hosting import temporal_worker  # noqa: E402


def settings_for(workdir: Path, address: str) -> Settings:
    return Settings(
        db=f"sqlite:///{workdir / f'temporal-{uuid.uuid4().hex[:8]}.db'}",
        runtime="temporal",
        temporal_address=address,
        temporal_task_queue=f"bench-{uuid.uuid4().hex[:8]}",
        python_paths=(str(HERE),),
        poll_interval=0.01,
    )


ROUNDS = 5


async def side_by_side(
    client: Client, workdir: Path, address: str, steps: int, resumes: int
) -> dict[str, Any]:
    """Plain temporalio and pausepoint on the same dev server: A one after the other,
    B in ``ROUNDS`` alternating rounds (plain, pausepoint settled, pausepoint at once)."""
    per_round = max(1, resumes // ROUNDS)
    plain: list[float] = []
    settled: list[float] = []
    at_once: list[float] = []
    async with temporal_bench.plain_worker(client), pausepoint_control(workdir, address) as control:
        plain_steps = await temporal_bench.plain_steps(client, steps)
        our_steps = await durable_steps(control, steps)
        for _ in range(ROUNDS):
            plain += await temporal_bench.plain_resume_latencies(client, per_round)
            settled += await resume_latencies(control, per_round, SETTLE_SECONDS)
            at_once += await resume_latencies(control, per_round, 0.0)
    return {
        "durable_steps": our_steps,
        "resume_latency": latency_summary(settled),
        "resume_latency_at_once": latency_summary(at_once),
        "plain": {"durable_steps": plain_steps, "resume_latency": latency_summary(plain)},
        "rounds": ROUNDS,
    }


@contextlib.asynccontextmanager
async def pausepoint_control(workdir: Path, address: str) -> AsyncIterator[Engine]:
    """An API engine on Temporal, with a worker running in this process."""
    settings = settings_for(workdir, address)
    async with (
        Engine(settings, serve=True) as control,
        Engine(settings) as host,
        temporal_worker(host),
    ):
        yield control


async def durable_steps(control: Engine, steps: int) -> dict[str, Any]:
    await control.put_flow(bench_tasks.noop_steps_flow("tsteps", steps))
    started = time.perf_counter()
    execution = await control.start_execution("bench", "tsteps")
    view = await control.wait(execution.id, until=lambda v: v.is_terminal, timeout=600)
    elapsed = time.perf_counter() - started
    assert view.state == "COMPLETED", view.state
    return {"steps": steps, "steps_per_s": round(steps / elapsed, 1)}


async def resume_latencies(control: Engine, count: int, settle: float) -> list[float]:
    """Resume a run ``count`` times, each ``settle`` seconds after it is PAUSED.

    PAUSED is in the store once the pausing step's checkpoint is; the workflow task
    that wrote it completes after, and a signal that arrives before then waits for it.
    """
    flow_id = f"tgates-{uuid.uuid4().hex[:8]}"
    await control.put_flow(bench_tasks.gate_flow(flow_id, count))
    execution = await control.start_execution("bench", flow_id)
    latencies = []
    for _ in range(count):
        await control.wait(execution.id, until=lambda v: v.state == "PAUSED", timeout=60)
        await asyncio.sleep(settle)
        bench_tasks.started_event = asyncio.Event()
        sent = time.perf_counter()
        await control.resume(execution.id)
        await asyncio.wait_for(bench_tasks.started_event.wait(), 60)
        latencies.append((bench_tasks.step_started[-1] - sent) * 1000)
    return latencies


if __name__ == "__main__":
    import json
    import tempfile

    async def main() -> None:
        quick = "--quick" in sys.argv
        with tempfile.TemporaryDirectory() as tmp:
            async with temporal_bench.dev_server(f"{tmp}/temporal.db") as env:
                address = env.client.service_client.config.target_host
                figures = await side_by_side(
                    env.client, Path(tmp), address, 50 if quick else 200, 10 if quick else 50
                )
        print(json.dumps(figures, indent=2))

    asyncio.run(main())
