"""What awaiting an execution through the public API costs: ``Engine.wait`` side by side
with catching its end on the event feed.

One execution of 200 no-op ``python`` steps, started with ``Engine.start_execution``;
its end is awaited either with ``Engine.wait`` (the documented way) or by a
subscriber of the organization's event feed (``engine.feed``, what the SSE stream
of the organization uses), in alternating rounds on one engine and one SQLite
file. The target (issue 14): ``wait`` costs at most 5% of the steps/s.

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
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_tasks  # noqa: E402
from peers.pausepoint import ended_executions  # noqa: E402

from pausepoint import Engine, Settings  # noqa: E402


async def with_wait(engine: Engine, flow_id: str) -> float:
    started = time.perf_counter()
    execution = await engine.start_execution("bench", flow_id)
    view = await engine.wait(execution.id)
    elapsed = time.perf_counter() - started
    assert view.state == "COMPLETED", view.state
    return elapsed


async def with_feed(engine: Engine, flow_id: str) -> float:
    with ended_executions(engine) as ends:
        started = time.perf_counter()
        execution = await engine.start_execution("bench", flow_id)
        await ends.all_of([execution.id])
        elapsed = time.perf_counter() - started
    assert (await engine.state(execution.id)).state == "COMPLETED"
    return elapsed


async def measure(rounds: int, steps: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(db=f"sqlite:///{tmp}/await.db", python_paths=(str(HERE),))
        async with Engine(settings) as engine:
            flow_id = f"await{steps}"
            await engine.put_flow(bench_tasks.noop_steps_flow(flow_id, steps))
            await with_wait(engine, flow_id)  # warm-up: imports, caches
            waited, fed = [], []
            for _ in range(rounds):
                waited.append(steps / await with_wait(engine, flow_id))
                fed.append(steps / await with_feed(engine, flow_id))
    wait_rate, feed_rate = statistics.median(waited), statistics.median(fed)
    return {
        "steps": steps,
        "rounds": rounds,
        "engine_wait_steps_per_s": round(wait_rate, 1),
        "feed_steps_per_s": round(feed_rate, 1),
        "wait_cost_percent": round((1 - wait_rate / feed_rate) * 100, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.rounds, args.steps)), indent=2))


if __name__ == "__main__":
    main()
