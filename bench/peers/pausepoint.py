"""pausepoint at the peers' sizes, measured by the same harness as every peer.

A step is a ``type: python`` task calling an async no-op function; each step is a
checkpoint (state, task run and events committed in one SQLite transaction, WAL,
``synchronous=NORMAL`` by default, ``--synchronous FULL`` as the peers' SQLite
defaults are). A pause is a ``type: pause`` task; resume is ``Engine.resume``.

pausepoint is driven and awaited only through its public API, as a user would:
``Engine.start_execution``, then ``Engine.wait`` for the end (or, with ``until``,
for PAUSED); nothing of the engine's insides is read or patched.

    cd bench && python -m peers.pausepoint --waiting 10000 --only D   # D at its target size
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from collections.abc import Callable
from typing import Any

import bench_tasks
from run import make_engine

from pausepoint import Engine, ExecutionView

from .common import (
    Context,
    Stopwatch,
    guarded,
    human_delays,
    latency_summary,
    main,
    mib,
    parser,
    per_second,
    rss_bytes,
    version_of,
    warm_up,
)

THREE_STEPS = bench_tasks.noop_steps_flow("three", 3, "peers")
WAITER = bench_tasks.flow(
    "waiter", f"  - id: wait\n    type: pause\n  - id: after\n{bench_tasks.NOOP_STEP}", "peers"
)
WORKLOADS = ("A", "B", "C", "D")
# Generous bounds for one wait: a timed-out wait fails the workload, never hangs it.
TIMEOUT = 600.0


def paused_at(task_id: str) -> Callable[[ExecutionView], bool]:
    """``Engine.wait``'s condition: the execution waits on the pause task ``task_id``."""

    def condition(view: ExecutionView) -> bool:
        return view.state == "PAUSED" and any(p.task_id == task_id for p in view.pause_points)

    return condition


def is_paused(view: ExecutionView) -> bool:
    return view.state == "PAUSED"


async def completed(engine: Engine, execution_id: str) -> None:
    view = await engine.wait(execution_id, timeout=TIMEOUT)
    if view.state != "COMPLETED":
        raise RuntimeError(f"execution {execution_id} ended {view.state}: {view.error}")


async def durable_steps(engine: Engine, count: int) -> dict[str, Any]:
    watch = Stopwatch()
    execution = await engine.start_execution("peers", "steps")
    await completed(engine, execution.id)
    return {
        "steps": count,
        "seconds": round(watch.seconds, 3),
        "steps_per_s": per_second(count, watch.seconds),
    }


async def resume_latencies(engine: Engine, execution_id: str, delays: list[float]) -> list[float]:
    """Resume a running gate flow (``bench_tasks.gate_flow``) once per delay: wait until
    it is PAUSED, let the delay pass, then time ``Engine.resume`` → its next step
    (``mark_start``) starting, in ms. The execution ends COMPLETED after the last."""
    latencies: list[float] = []
    for round_, delay in enumerate(delays):
        await engine.wait(execution_id, until=paused_at(f"wait{round_}"), timeout=TIMEOUT)
        await asyncio.sleep(delay)
        started = bench_tasks.expect_start()
        sent = time.perf_counter()
        await engine.resume(execution_id)
        latencies.append((await asyncio.wait_for(started, TIMEOUT) - sent) * 1000)
    await completed(engine, execution_id)
    return latencies


async def resume_latency(engine: Engine, count: int, flow_id: str = "gate") -> dict[str, Any]:
    """B: ``count`` resumes of one execution of the gate flow ``flow_id`` (namespace
    ``peers``), each sent after the next of the shared human delays."""
    execution = await engine.start_execution("peers", flow_id)
    latencies = await resume_latencies(engine, execution.id, human_delays(count))
    bench_tasks.step_started.clear()
    return latency_summary(latencies)


async def start_and_wait(engine: Engine, flow_id: str) -> ExecutionView:
    execution = await engine.start_execution("peers", flow_id)
    return await engine.wait(execution.id, timeout=TIMEOUT)


async def throughput(engine: Engine, count: int) -> dict[str, Any]:
    watch = Stopwatch()
    views = await asyncio.gather(*(start_and_wait(engine, "three") for _ in range(count)))
    seconds = watch.seconds
    if any(view.state != "COMPLETED" for view in views):
        raise RuntimeError(f"not all completed: {sorted({view.state for view in views})}")
    return {"workflows": count, "seconds": round(seconds, 3), "per_s": per_second(count, seconds)}


async def start_paused(engine: Engine) -> str:
    execution = await engine.start_execution("peers", "waiter")
    await engine.wait(execution.id, until=is_paused, timeout=TIMEOUT)
    return execution.id


async def many_paused(engine: Engine, count: int) -> dict[str, Any]:
    gc.collect()
    before = rss_bytes()
    ids: list[str] = []
    # A hundred at a time, each started and awaited until PAUSED.
    for offset in range(0, count, 100):
        batch = min(100, count - offset)
        ids += await asyncio.gather(*(start_paused(engine) for _ in range(batch)))
    gc.collect()
    after = rss_bytes()
    actors = sum(map(engine.runs_here, ids))
    watch = Stopwatch()
    await asyncio.gather(*(engine.resume(execution_id) for execution_id in ids))
    resumed_s = watch.seconds
    views = await asyncio.gather(*(engine.wait(i, timeout=TIMEOUT) for i in ids))
    resume_all_s = watch.seconds
    if any(view.state != "COMPLETED" for view in views):
        raise RuntimeError(f"not all completed: {sorted({view.state for view in views})}")
    return {
        "waiting": count,
        "processes": {
            "bench process (engine)": {"rss_mib": mib(after), "added_mib": mib(after - before)}
        },
        "rss_added_mib": mib(after - before),
        "rss_total_mib": mib(after),
        "actors_in_memory": actors,
        "resume_all_s": round(resume_all_s, 3),
        "resume_calls_returned_s": round(resumed_s, 3),
    }


async def measure(context: Context) -> dict[str, Any]:
    sizes = context.sizes
    only = context.options.only or WORKLOADS
    db = context.workdir / f"pausepoint-{context.run}.db"
    async with make_engine(db, context.options.synchronous) as engine:
        await engine.put_flow(bench_tasks.noop_steps_flow("steps", sizes.steps, "peers"))
        await engine.put_flow(bench_tasks.gate_flow("gate", sizes.resumes, "peers"))
        await engine.put_flow(THREE_STEPS)
        await engine.put_flow(WAITER)
        await warm_up(throughput(engine, 1))
        figures: dict[str, Any] = {}
        if "A" in only:
            figures["durable_steps"] = await guarded("A", durable_steps(engine, sizes.steps))
        if "B" in only:
            figures["resume_latency"] = await guarded("B", resume_latency(engine, sizes.resumes))
        if "C" in only:
            figures["throughput"] = await guarded("C", throughput(engine, sizes.workflows))
        if "D" in only:
            figures["many_paused"] = await guarded("D", many_paused(engine, sizes.waiting))
        return figures


def describe(options: argparse.Namespace) -> dict[str, Any]:
    return {
        "system": "pausepoint",
        "variant": f"embedded, SQLite {options.synchronous}",
        "version": version_of("pausepoint"),
        "step": "a `type: python` task calling an async no-op function; one checkpoint "
        "transaction per step",
        "pause": "a `type: pause` task; `Engine.resume`",
        "awaited": "`Engine.wait` (until PAUSED, or the end)",
        "settings": f"SQLite file, WAL, synchronous={options.synchronous} ("
        + (
            "the default: survives a process crash"
            if options.synchronous == "NORMAL"
            else "survives power loss"
        )
        + "); every other setting its default",
    }


def arguments() -> argparse.ArgumentParser:
    options = parser(__doc__)
    options.add_argument("--synchronous", choices=["NORMAL", "FULL"], default="NORMAL")
    options.add_argument(
        "--only", choices=WORKLOADS, action="append", help="run only this workload (repeatable)"
    )
    return options


if __name__ == "__main__":
    main(measure, describe, arguments())
