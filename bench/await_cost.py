"""What awaiting an execution through the public API costs.

One execution of 200 no-op ``python`` steps, started with ``Engine.start_execution``,
three ways, in alternating rounds on one engine and one SQLite file:

- nobody waits on it: its state is looked at only every 50 ms (``Engine.state``),
  and its duration is the one its engine recorded (``created_at`` → ``ended_at``, to
  the millisecond, read with ``Engine.execution`` once it has ended);
- ``Engine.wait`` (which wakes only for the events that can end it): from before the
  start call until ``wait`` returns;
- ``Engine.follow``, reading every event it writes until the terminal one.

All three are public API (the benchmarks use nothing else, issue 19). The target
(issue 14): ``wait`` costs at most 5% of the steps/s of the execution nobody waits on.

    .venv/bin/python bench/await_cost.py [--rounds 7] [--steps 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_tasks  # noqa: E402

from pausepoint import Engine, Settings  # noqa: E402
from pausepoint.models import TERMINAL_STATES  # noqa: E402

LOOK_EVERY = 0.05


async def unobserved(engine: Engine, flow_id: str) -> float:
    """The execution's own duration, as its engine recorded it."""
    execution = await engine.start_execution("bench", flow_id)
    # Polled on purpose: anything that waits on the execution is what is measured against.
    while (await engine.state(execution.id)).state not in TERMINAL_STATES:  # noqa: ASYNC110
        await asyncio.sleep(LOOK_EVERY)
    view = await engine.execution(execution.id)
    assert view.state == "COMPLETED" and view.ended_at is not None, view.state
    created = datetime.fromisoformat(view.created_at)
    ended = datetime.fromisoformat(view.ended_at)
    return (ended - created).total_seconds()


async def with_wait(engine: Engine, flow_id: str) -> float:
    started = time.perf_counter()
    execution = await engine.start_execution("bench", flow_id)
    view = await engine.wait(execution.id)
    elapsed = time.perf_counter() - started
    assert view.state == "COMPLETED", view.state
    return elapsed


async def with_follow(engine: Engine, flow_id: str) -> float:
    started = time.perf_counter()
    execution = await engine.start_execution("bench", flow_id)
    last = None
    async for event in engine.follow(execution.id):
        last = event
    elapsed = time.perf_counter() - started
    assert last is not None and last.type == "workflow.completed", last
    return elapsed


async def measure(rounds: int, steps: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(db=f"sqlite:///{tmp}/await.db", python_paths=(str(HERE),))
        async with Engine(settings) as engine:
            flow_id = f"await{steps}"
            await engine.put_flow(bench_tasks.noop_steps_flow(flow_id, steps))
            await with_wait(engine, flow_id)  # warm-up: imports, caches
            alone: list[float] = []
            waited: list[float] = []
            followed: list[float] = []
            for _ in range(rounds):
                alone.append(steps / await unobserved(engine, flow_id))
                waited.append(steps / await with_wait(engine, flow_id))
                followed.append(steps / await with_follow(engine, flow_id))
    alone_rate = statistics.median(alone)
    wait_rate = statistics.median(waited)
    return {
        "steps": steps,
        "rounds": rounds,
        "unobserved_steps_per_s": round(alone_rate, 1),
        "engine_wait_steps_per_s": round(wait_rate, 1),
        "follow_steps_per_s": round(statistics.median(followed), 1),
        "wait_cost_percent": round((1 - wait_rate / alone_rate) * 100, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.rounds, args.steps)), indent=2))


if __name__ == "__main__":
    main()
