"""pausepoint at the peers' sizes, measured by the same harness as every peer.

A step is a ``type: python`` task calling an async no-op function; each step is a
checkpoint (state, task run and events committed in one SQLite transaction, WAL,
``synchronous=NORMAL`` by default, ``--synchronous FULL`` as the peers' SQLite
defaults are). A pause is a ``type: pause`` task; resume is
``Engine.resume``. Completion and pauses are awaited as bench/run.py awaits them
(an in-memory event sink; ``Engine.wait`` would re-read events from the store).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import time
from collections.abc import Iterable, Iterator
from typing import Any

import bench_tasks
from run import make_engine, until_event

from pausepoint.models import TERMINAL_EVENT_TYPES
from pausepoint.service.feed import EventRecord

from .common import (
    Context,
    Stopwatch,
    guarded,
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


async def terminal(engine: Any, execution_id: str) -> None:
    await until_event(engine, execution_id, set(TERMINAL_EVENT_TYPES))


async def durable_steps(engine: Any, count: int) -> dict[str, Any]:
    watch = Stopwatch()
    execution = await engine.start_execution("peers", "steps")
    await terminal(engine, execution.id)
    assert (await engine.state(execution.id)).state == "COMPLETED"
    return {
        "steps": count,
        "seconds": round(watch.seconds, 3),
        "steps_per_s": per_second(count, watch.seconds),
    }


async def resume_latency(engine: Any, count: int) -> dict[str, Any]:

    latencies: list[float] = []
    execution = await engine.start_execution("peers", "gate")
    seen = 0
    for _ in range(count):
        _, seen = await until_event(engine, execution.id, {"workflow.paused"}, after=seen)
        bench_tasks.started_event = asyncio.Event()
        sent = time.perf_counter()
        await engine.resume(execution.id)
        await asyncio.wait_for(bench_tasks.started_event.wait(), 60)
        latencies.append((bench_tasks.step_started[-1] - sent) * 1000)
    await terminal(engine, execution.id)
    bench_tasks.step_started.clear()
    return latency_summary(latencies)


class Ends:
    """The executions that end from now on (see ``ended_executions``)."""

    def __init__(self) -> None:
        self.ended: set[str] = set()
        self._news = asyncio.Event()

    def note(self, events: list[EventRecord] | None) -> None:
        for event in events or ():
            if event.type in TERMINAL_EVENT_TYPES:
                self.ended.add(event.execution_id)
                self._news.set()

    async def all_of(self, ids: Iterable[str], timeout: float = 600) -> None:
        """Return once every execution in ``ids`` has ended."""
        waiting = set(ids)
        while not waiting <= self.ended:
            self._news.clear()
            await asyncio.wait_for(self._news.wait(), timeout)


@contextlib.contextmanager
def ended_executions(engine: Any) -> Iterator[Ends]:
    """Watch the ends of every execution of the engine's organization, from now on.

    Through the engine's public event feed (what the organization's SSE stream
    uses), so executions that end before their start call has even returned
    count too, and waiting reads nothing from the store."""
    ends = Ends()
    subscription = engine.feed.subscribe_organization(engine.org_id, ends.note)
    try:
        yield ends
    finally:
        engine.feed.unsubscribe_organization(subscription)


async def throughput(engine: Any, count: int) -> dict[str, Any]:
    with ended_executions(engine) as ends:
        watch = Stopwatch()
        views = await asyncio.gather(
            *(engine.start_execution("peers", "three") for _ in range(count))
        )
        await ends.all_of(view.id for view in views)
    return {
        "workflows": count,
        "seconds": round(watch.seconds, 3),
        "per_s": per_second(count, watch.seconds),
    }


async def many_paused(engine: Any, count: int) -> dict[str, Any]:
    gc.collect()
    before = rss_bytes()
    ids: list[str] = []
    for offset in range(0, count, 100):
        views = await asyncio.gather(
            *(engine.start_execution("peers", "waiter") for _ in range(min(100, count - offset)))
        )
        ids.extend(view.id for view in views)
    await asyncio.gather(*(until_event(engine, i, {"workflow.paused"}) for i in ids))
    gc.collect()
    after = rss_bytes()
    with ended_executions(engine) as ends:
        watch = Stopwatch()
        await asyncio.gather(*(engine.resume(execution_id) for execution_id in ids))
        resumed_s = watch.seconds
        await ends.all_of(ids)
        resume_all_s = watch.seconds
    completed = await engine.list_executions(states=["COMPLETED"], limit=count + 1000)
    assert set(ids) <= {row.id for row in completed}
    return {
        "waiting": count,
        "processes": {
            "bench process (engine)": {"rss_mib": mib(after), "added_mib": mib(after - before)}
        },
        "rss_added_mib": mib(after - before),
        "rss_total_mib": mib(after),
        "resume_all_s": round(resume_all_s, 3),
        "resume_calls_returned_s": round(resumed_s, 3),
    }


async def measure(context: Context) -> dict[str, Any]:
    sizes = context.sizes
    db = context.workdir / f"pausepoint-{context.run}.db"
    async with make_engine(db, context.options.synchronous) as engine:
        await engine.put_flow(bench_tasks.noop_steps_flow("steps", sizes.steps, "peers"))
        await engine.put_flow(bench_tasks.gate_flow("gate", sizes.resumes, "peers"))
        await engine.put_flow(THREE_STEPS)
        await engine.put_flow(WAITER)
        await warm_up(throughput(engine, 1))
        return {
            "durable_steps": await guarded("A", durable_steps(engine, sizes.steps)),
            "resume_latency": await guarded("B", resume_latency(engine, sizes.resumes)),
            "throughput": await guarded("C", throughput(engine, sizes.workflows)),
            "many_paused": await guarded("D", many_paused(engine, sizes.waiting)),
        }


def describe(options: argparse.Namespace) -> dict[str, Any]:
    return {
        "system": "pausepoint",
        "variant": f"embedded, SQLite {options.synchronous}",
        "version": version_of("pausepoint"),
        "step": "a `type: python` task calling an async no-op function; one checkpoint "
        "transaction per step",
        "pause": "a `type: pause` task; `Engine.resume`",
        "settings": f"SQLite file, WAL, synchronous={options.synchronous} ("
        + (
            "the default: survives a process crash"
            if options.synchronous == "NORMAL"
            else "survives power loss"
        )
        + ")",
    }


def arguments() -> argparse.ArgumentParser:
    options = parser(__doc__)
    options.add_argument("--synchronous", choices=["NORMAL", "FULL"], default="NORMAL")
    return options


if __name__ == "__main__":
    main(measure, describe, arguments())
