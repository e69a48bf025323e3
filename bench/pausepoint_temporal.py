"""pausepoint on temporal+postgres, next to hand-written temporalio on the same dev server,
with one worker and with two on the task queue.

Two workloads: A, N sequential no-op steps (a ``python`` task, which pausepoint runs
as a Temporal activity; an activity per step for plain Temporal), and B, resumes of
a paused run, each sent a human delay (50-1,050 ms, the peers' seeded sequence)
after it is known to wait, timed until the next step starts. pausepoint is driven
and awaited through its public API only: an API engine (``Engine(settings,
serve=True)``, what ``pausepoint server --runtime temporal`` runs) and workers as
``pausepoint worker`` runs them (an engine inside ``service.hosting.temporal_worker``),
here in this process, on a PostgreSQL store. Plain Temporal runs its hand-written
workers (``temporal_bench.workers``) the same way. Every setting is its default but
the database, the Temporal address and task queue, and where tasks import from.

The dev server's latency swings a lot on this machine (plain Temporal's resume p50
was 32 ms in one run and 77 ms in the next), so the resumes of both sides are taken
in alternating rounds: each round's plain resumes and pausepoint's see the same
server and the same machine, and the medians compare like with like.
"""

from __future__ import annotations

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
from peers import pausepoint as harness  # noqa: E402
from peers import temporal as plain_harness  # noqa: E402
from peers.common import human_delays, latency_summary, median_of  # noqa: E402
from temporalio.client import Client  # noqa: E402

from pausepoint import Engine, Settings  # noqa: E402
from pausepoint.service.hosting import temporal_worker  # noqa: E402

ROUNDS = 5
WORKER_COUNTS = (1, 2)


def settings_for(db: str, address: str) -> Settings:
    return Settings(
        db=db,
        runtime="temporal",
        temporal_address=address,
        temporal_task_queue=f"bench-{uuid.uuid4().hex[:8]}",
        python_paths=(str(HERE),),
    )


@contextlib.asynccontextmanager
async def pausepoint_control(db: str, address: str, worker_count: int) -> AsyncIterator[Engine]:
    """An API engine on Temporal, and ``worker_count`` workers on its task queue."""
    settings = settings_for(db, address)
    async with contextlib.AsyncExitStack() as stack:
        control = await stack.enter_async_context(Engine(settings, serve=True))
        for _ in range(worker_count):
            host = await stack.enter_async_context(Engine(settings))
            await stack.enter_async_context(temporal_worker(host))
        yield control


async def durable_steps(control: Engine, steps: int) -> dict[str, Any]:
    flow_id = f"tsteps-{uuid.uuid4().hex[:8]}"
    await control.put_flow(bench_tasks.noop_steps_flow(flow_id, steps, "peers"))
    started = time.perf_counter()
    execution = await control.start_execution("peers", flow_id)
    view = await control.wait(execution.id, timeout=600)
    elapsed = time.perf_counter() - started
    assert view.state == "COMPLETED", view.state
    return {"steps": steps, "steps_per_s": round(steps / elapsed, 1)}


async def resume_latencies(control: Engine, delays: list[float]) -> list[float]:
    """One execution of a gate flow resumed once per delay (the embedded harness's B)."""
    flow_id = f"tgates-{uuid.uuid4().hex[:8]}"
    await control.put_flow(bench_tasks.gate_flow(flow_id, len(delays), "peers"))
    execution = await control.start_execution("peers", flow_id)
    return await harness.resume_latencies(control, execution.id, delays)


async def one_run(
    client: Client, db: str, address: str, steps: int, resumes: int, worker_count: int
) -> dict[str, Any]:
    """Plain temporalio and pausepoint with ``worker_count`` workers each: A one after
    the other, B in ``ROUNDS`` alternating rounds, both sides with the same delays."""
    delays = human_delays(resumes)
    per_round = -(-resumes // ROUNDS)
    plain: list[float] = []
    ours: list[float] = []
    queue = f"plain-{uuid.uuid4().hex[:8]}"
    async with (
        temporal_bench.workers(client, queue, worker_count),
        pausepoint_control(db, address, worker_count) as control,
    ):
        plain_steps = await temporal_bench.plain_steps(client, queue, steps)
        our_steps = await durable_steps(control, steps)
        for start in range(0, resumes, per_round):
            round_delays = delays[start : start + per_round]
            plain += await plain_harness.resume_latencies(client, queue, round_delays, False)
            ours += await resume_latencies(control, round_delays)
    return {
        "workers": worker_count,
        "durable_steps": our_steps,
        "resume_latency": latency_summary(ours),
        "plain": {"durable_steps": plain_steps, "resume_latency": latency_summary(plain)},
    }


async def side_by_side(
    client: Client, db: str, address: str, steps: int, resumes: int, runs: int
) -> dict[str, Any]:
    """Each worker count ``runs`` times (the counts alternating); the median of each
    figure over the runs, per worker count."""
    by_count: dict[int, list[dict[str, Any]]] = {count: [] for count in WORKER_COUNTS}
    for _ in range(runs):
        for count in WORKER_COUNTS:
            by_count[count].append(await one_run(client, db, address, steps, resumes, count))
    return {
        "store": "PostgreSQL" if db.startswith("postgresql") else "SQLite",
        "runs": runs,
        "rounds": ROUNDS,
        "by_workers": {str(count): median_of(figures) for count, figures in by_count.items()},
    }


if __name__ == "__main__":
    import asyncio
    import json
    import tempfile

    async def main() -> None:
        quick = "--quick" in sys.argv
        with tempfile.TemporaryDirectory() as tmp:
            async with temporal_bench.dev_server(f"{tmp}/temporal.db") as env:
                address = env.client.service_client.config.target_host
                figures = await side_by_side(
                    env.client,
                    f"sqlite:///{tmp}/pausepoint.db",
                    address,
                    30 if quick else 200,
                    5 if quick else 50,
                    1 if quick else 3,
                )
        print(json.dumps(figures, indent=2))

    asyncio.run(main())
