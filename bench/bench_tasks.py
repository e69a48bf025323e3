"""Task functions the benchmarks call (imported through Settings.python_paths), and the
flows that call them."""

from __future__ import annotations

import asyncio
import time

step_started: list[float] = []
step_ended: list[float] = []
started_event: asyncio.Event | None = None


async def noop() -> None:
    """A step that does nothing (pausepoint runs a python task as a Temporal activity)."""


async def mark_start() -> dict[str, float]:
    now = time.perf_counter()
    step_started.append(now)
    if started_event is not None:
        started_event.set()
    return {"at": now}


async def work_50ms() -> dict[str, float]:
    await asyncio.sleep(0.05)
    now = time.perf_counter()
    step_ended.append(now)
    return {"ended": now}


# A step that does nothing but is a real task with effects: the engine commits before
# it starts (unlike the pure `return` task), and on Temporal it is an activity.
NOOP_STEP = "    type: python\n    function: bench_tasks:noop\n"


def flow(flow_id: str, tasks: str, namespace: str = "bench") -> str:
    return f"id: {flow_id}\nnamespace: {namespace}\ntasks:\n{tasks}"


def noop_steps_flow(flow_id: str, count: int, namespace: str = "bench") -> str:
    """``count`` no-op python steps."""
    return flow(flow_id, "".join(f"  - id: s{i}\n{NOOP_STEP}" for i in range(count)), namespace)


def gate_flow(flow_id: str, count: int, namespace: str = "bench") -> str:
    """``count`` times: a Pause task, then a step that notes when it started (mark_start)."""
    tasks = "".join(
        f"  - id: wait{i}\n    type: pause\n"
        f"  - id: step{i}\n    type: python\n    function: bench_tasks:mark_start\n"
        for i in range(count)
    )
    return flow(flow_id, tasks, namespace)
