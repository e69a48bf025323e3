"""LangGraph as a peer: a ``StateGraph`` with the SQLite checkpointer.

A step is one node (an async no-op that bumps a counter), i.e. one superstep, after
which LangGraph writes a checkpoint; every run uses ``durability="sync"`` so the
checkpoint is written before the next step starts (the default, ``"async"``, lets
the next step run while it is written). The checkpointer is ``AsyncSqliteSaver`` on
one SQLite file (WAL, the sqlite3 module's default ``synchronous``). A pause is
``interrupt()`` inside a node; resume is ``ainvoke(Command(resume=...))`` on the same
thread. LangGraph has no worker or server: a graph runs inside the caller's
``ainvoke``, so "started at once" means concurrent ``ainvoke`` calls on one loop.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
import uuid
from typing import Any, TypedDict

from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from .common import (
    Context,
    Stopwatch,
    guarded,
    human_delays,
    latency_summary,
    log,
    main,
    mib,
    parser,
    per_second,
    rss_bytes,
    version_of,
    warm_up,
)

_started: list[float] = []


class Counter(TypedDict):
    done: int
    goal: int


async def noop(state: Counter) -> dict[str, int]:
    return {"done": state["done"] + 1}


async def wait(state: Counter) -> dict[str, int]:
    interrupt("paused")
    return {}


async def mark(state: Counter) -> dict[str, int]:
    _started.append(time.perf_counter())
    return {"done": state["done"] + 1}


def more(state: Counter) -> bool:
    return state["done"] < state["goal"]


def loop_graph(saver: AsyncSqliteSaver) -> Any:
    """``goal`` steps, one node run per step: A (no pause) and C (goal 3)."""
    graph = StateGraph(Counter)
    graph.add_node("step", noop)
    graph.add_edge(START, "step")
    graph.add_conditional_edges("step", more, {True: "step", False: END})
    return graph.compile(checkpointer=saver)


def gate_graph(saver: AsyncSqliteSaver, timed: bool) -> Any:
    """``goal`` rounds of: pause (``interrupt``), then a step. B times the step
    (``timed``); D uses one round."""
    graph = StateGraph(Counter)
    graph.add_node("wait", wait)
    graph.add_node("step", mark if timed else noop)
    graph.add_edge(START, "wait")
    graph.add_edge("wait", "step")
    graph.add_conditional_edges("step", more, {True: "wait", False: END})
    return graph.compile(checkpointer=saver)


def thread(name: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": f"{name}-{uuid.uuid4().hex}"}, "recursion_limit": 100_000}


async def durable_steps(saver: AsyncSqliteSaver, count: int) -> dict[str, Any]:
    graph = loop_graph(saver)
    watch = Stopwatch()
    state = await graph.ainvoke({"done": 0, "goal": count}, thread("steps"), durability="sync")
    assert state["done"] == count, state
    return {
        "steps": count,
        "seconds": round(watch.seconds, 3),
        "steps_per_s": per_second(count, watch.seconds),
    }


async def resume_latency(saver: AsyncSqliteSaver, count: int) -> dict[str, Any]:
    graph = gate_graph(saver, timed=True)
    config = thread("gate")
    # Returns at the first interrupt: the graph is waiting, nothing of it runs.
    await graph.ainvoke({"done": 0, "goal": count}, config, durability="sync")
    latencies: list[float] = []
    for delay in human_delays(count):
        await asyncio.sleep(delay)
        _started.clear()
        sent = time.perf_counter()
        await graph.ainvoke(Command(resume="go"), config, durability="sync")
        latencies.append((_started[0] - sent) * 1000)
    return latency_summary(latencies)


async def throughput(saver: AsyncSqliteSaver, count: int) -> dict[str, Any]:
    graph = loop_graph(saver)
    watch = Stopwatch()
    states = await asyncio.gather(
        *(
            graph.ainvoke({"done": 0, "goal": 3}, thread("three"), durability="sync")
            for _ in range(count)
        )
    )
    assert all(state["done"] == 3 for state in states)
    return {
        "workflows": count,
        "seconds": round(watch.seconds, 3),
        "per_s": per_second(count, watch.seconds),
    }


async def many_paused(saver: AsyncSqliteSaver, count: int) -> dict[str, Any]:
    graph = gate_graph(saver, timed=False)
    gc.collect()
    before = rss_bytes()
    configs = [thread("waiter") for _ in range(count)]
    for offset in range(0, count, 100):
        await asyncio.gather(
            *(
                graph.ainvoke({"done": 0, "goal": 1}, config, durability="sync")
                for config in configs[offset : offset + 100]
            )
        )
    gc.collect()
    after = rss_bytes()
    watch = Stopwatch()
    states = await asyncio.gather(
        *(graph.ainvoke(Command(resume="go"), config, durability="sync") for config in configs)
    )
    assert all(state["done"] == 1 for state in states)
    return {
        "waiting": count,
        "processes": {
            "bench process (graphs + checkpointer)": {
                "rss_mib": mib(after),
                "added_mib": mib(after - before),
            }
        },
        "rss_added_mib": mib(after - before),
        "rss_total_mib": mib(after),
        "resume_all_s": round(watch.seconds, 3),
    }


async def measure(context: Context) -> dict[str, Any]:
    sizes = context.sizes
    path = context.workdir / f"langgraph-{context.run}.sqlite"
    log(f"  checkpointer {path}")
    async with AsyncSqliteSaver.from_conn_string(str(path)) as saver:
        await warm_up(throughput(saver, 1))
        return {
            "durable_steps": await guarded("A", durable_steps(saver, sizes.steps)),
            "resume_latency": await guarded("B", resume_latency(saver, sizes.resumes)),
            "throughput": await guarded("C", throughput(saver, sizes.workflows)),
            "many_paused": await guarded("D", many_paused(saver, sizes.waiting)),
        }


def describe(options: argparse.Namespace) -> dict[str, Any]:
    return {
        "system": "LangGraph",
        "variant": "SQLite checkpointer",
        "version": version_of("langgraph", "langgraph-checkpoint-sqlite"),
        "step": "one graph node (an async no-op), i.e. one superstep, checkpointed with "
        'durability="sync" before the next',
        "pause": "`interrupt()` in a node; resume = `ainvoke(Command(resume=...))`",
        "awaited": "`ainvoke` (it returns at the end, or at an interrupt)",
        "settings": "AsyncSqliteSaver, one SQLite file "
        "(WAL, synchronous=FULL: the sqlite3 default)",
    }


if __name__ == "__main__":
    main(measure, describe, parser(__doc__))
