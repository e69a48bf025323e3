"""pausepoint on Temporal, next to the hand-written baseline on the same dev server.

The same two workloads as ``temporal_bench.py``: N sequential steps (each a
Temporal activity: a ``python`` task, which pausepoint runs as an activity),
and a paused execution whose resume is timed until the next step starts. The
API engine (TemporalRuntime) and a worker run in this process, as in the tests;
the store is a SQLite file (``--db`` in production points at PostgreSQL).
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_tasks  # noqa: E402
from peers.common import latency_summary  # noqa: E402
from temporal_bench import SETTLE_SECONDS  # noqa: E402

from pausepoint import Engine, Settings  # noqa: E402
from pausepoint.runtime.temporal import TemporalRuntime  # noqa: E402


def settings_for(workdir: Path, address: str) -> Settings:
    return Settings(
        db=f"sqlite:///{workdir / f'temporal-{uuid.uuid4().hex[:8]}.db'}",
        runtime="temporal",
        temporal_address=address,
        temporal_task_queue=f"bench-{uuid.uuid4().hex[:8]}",
        python_paths=(str(HERE),),
        poll_interval=0.01,
    )


async def pausepoint_on_temporal(
    workdir: Path, address: str, steps: int, resumes: int
) -> dict[str, Any]:
    settings = settings_for(workdir, address)
    async with Engine(settings, serve=True) as control, Engine(settings) as host:
        runtime = host.runtime
        assert isinstance(runtime, TemporalRuntime)
        async with runtime.worker():
            await control.put_flow(bench_tasks.noop_steps_flow("tsteps", steps))
            started = time.perf_counter()
            execution = await control.start_execution("bench", "tsteps")
            view = await control.wait(execution.id, until=lambda v: v.is_terminal, timeout=600)
            elapsed = time.perf_counter() - started
            assert view.state == "COMPLETED", view.state
            settled = await _resume_latencies(control, resumes, SETTLE_SECONDS)
            at_once = await _resume_latencies(control, resumes, 0.0)
    return {
        "durable_steps": {"steps": steps, "steps_per_s": round(steps / elapsed, 1)},
        "resume_latency": latency_summary(settled),
        "resume_latency_at_once": latency_summary(at_once),
    }


async def _resume_latencies(control: Engine, count: int, settle: float) -> list[float]:
    """Resume a run ``count`` times, each ``settle`` seconds after it is PAUSED.

    PAUSED is in the store once the pausing step's checkpoint is; the workflow task
    that wrote it completes after, and a signal that arrives before then waits for it.
    """
    flow_id = f"tgates-{uuid.uuid4().hex[:8]}"
    await control.put_flow(bench_tasks.gate_flow(flow_id, count))
    execution = await control.start_execution("bench", flow_id)
    latencies = []
    for _ in range(count):
        await control.wait(execution.id, until=lambda v: v.state == "PAUSED", timeout=60)
        await asyncio.sleep(settle)
        bench_tasks.started_event = asyncio.Event()
        sent = time.perf_counter()
        await control.resume(execution.id)
        await asyncio.wait_for(bench_tasks.started_event.wait(), 60)
        latencies.append((bench_tasks.step_started[-1] - sent) * 1000)
    return latencies


if __name__ == "__main__":
    import json
    import tempfile

    from temporal_bench import dev_server

    async def main() -> None:
        quick = "--quick" in sys.argv
        with tempfile.TemporaryDirectory() as tmp:
            async with dev_server() as env:
                address = env.client.service_client.config.target_host
                figures = await pausepoint_on_temporal(
                    Path(tmp), address, 50 if quick else 200, 10 if quick else 50
                )
        print(json.dumps(figures, indent=2))

    asyncio.run(main())
