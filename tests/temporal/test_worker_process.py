"""`pausepoint worker` as real processes: they run executions, and one killed mid-task is
replaced by another without re-running any checkpointed step."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pausepoint.config import Settings
from pausepoint.service.engine import Engine
from pausepoint.testing import assert_eventually
from tests.integration.test_control import TIMEOUT, types

pytestmark = pytest.mark.e2e  # `pausepoint worker` as real processes

HERE = Path(__file__).parent
PAUSEPOINT = Path(sys.executable).parent / "pausepoint"

FLOW = """
id: crash
namespace: workers
tasks:
  - id: before
    type: return
    format: checkpointed
  - id: slow
    type: python
    function: worker_functions:mark_then_wait
    kwargs:
      trace: "{{ inputs.trace }}"
      seconds: 60
  - id: after
    type: return
    format: "{{ outputs.before.value }} then {{ outputs.slow.pid }}"
inputs:
  - id: trace
    type: STRING
"""


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """The API server allows what the workers run (worker_functions, in HERE): flows are
    checked against the allow-list when saved there."""
    return {"python_paths": (str(HERE),)}


@contextlib.contextmanager
def worker_process(settings: Settings) -> Iterator[subprocess.Popen[bytes]]:
    """`pausepoint worker` on the test's database and task queue, importing from here."""
    env = {
        **os.environ,
        "PAUSEPOINT_TEMPORAL_HEARTBEAT_TIMEOUT": str(settings.temporal_heartbeat_timeout),
        "PAUSEPOINT_SHUTDOWN_GRACE_PERIOD": "0",
    }
    process = subprocess.Popen(
        [
            str(PAUSEPOINT),
            "worker",
            "--db",
            settings.db,
            "--temporal-address",
            settings.temporal_address,
            "--task-queue",
            settings.temporal_task_queue,
        ],
        cwd=HERE,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def test_a_killed_worker_is_replaced_without_rerunning_checkpointed_steps(
    control_plane: Engine, settings: Settings, tmp_path: Path
) -> None:
    trace = tmp_path / "trace"
    await control_plane.put_flow(FLOW)
    with worker_process(settings) as one, worker_process(settings) as two:
        execution = await control_plane.start_execution(
            "workers", "crash", inputs={"trace": str(trace)}
        )
        await assert_eventually(_exists(trace), timeout=TIMEOUT)
        victim = int(trace.read_text().split()[0])
        assert victim in (one.pid, two.pid)
        os.kill(victim, signal.SIGKILL)

        view = await control_plane.wait(execution.id, timeout=TIMEOUT + 20)

    assert view.state == "COMPLETED"
    survivor = two.pid if victim == one.pid else one.pid
    assert [int(pid) for pid in trace.read_text().split()] == [victim, survivor]
    assert view.task_run("after").outputs == {"value": f"checkpointed then {survivor}"}
    events = await control_plane.events(execution.id)
    started = [e.data["task_id"] for e in events if e.type == "task.started"]
    assert started == ["before", "slow", "after"]
    assert types(events)[-1] == "workflow.completed"


def _exists(path: Path) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await asyncio.to_thread(path.exists)

    return check
