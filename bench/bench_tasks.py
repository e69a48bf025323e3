"""Task functions the benchmarks call (imported through Settings.python_paths), and the
flows that call them."""

from __future__ import annotations

import asyncio
import time

step_started: list[float] = []
step_ended: list[float] = []
_start_expected: asyncio.Future[float] | None = None


async def noop() -> None:
    """A step that does nothing (pausepoint runs a python task as a Temporal activity)."""


def expect_start() -> asyncio.Future[float]:
    """A future that the next ``mark_start`` resolves with the moment it started.

    The step is user code telling the benchmark when it runs, as the peers' marking
    steps do; pausepoint itself is only driven and awaited through its public API."""
    global _start_expected
    _start_expected = asyncio.get_running_loop().create_future()
    return _start_expected


async def mark_start() -> dict[str, float]:
    now = time.perf_counter()
    step_started.append(now)
    if _start_expected is not None and not _start_expected.done():
        _start_expected.set_result(now)
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
    """``count`` times: a Pause task ``wait{i}``, then a step ``step{i}`` that notes when
    it started (mark_start)."""
    tasks = "".join(
        f"  - id: wait{i}\n    type: pause\n"
        f"  - id: step{i}\n    type: python\n    function: bench_tasks:mark_start\n"
        for i in range(count)
    )
    return flow(flow_id, tasks, namespace)
