"""Kestra's PurgeLogs task, its own flows unchanged, to PurgeLogsTest's outcomes.

Kestra's test saves a log entry straight into its log repository; pausepoint's
log lines are those executions log, so here an execution of the flow the entry
names logs the line, at the moment the entry has (the engine's clock is moved
for it). The lines go; the events that held them stay.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pausepoint.config import Settings
from pausepoint.models import ExecutionView
from pausepoint.service.engine import Engine
from pausepoint.testing import fast_settings

VALIDS = Path(__file__).resolve().parents[1] / "kestra" / "valids"
TIMEOUT = 30.0
HOUR = 3600.0


class Clock:
    """The wall clock, moved by the test to log a line at another moment."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def settings(db_path: Path) -> Settings:
    return fast_settings(db_path)


@pytest.fixture
async def engine(settings: Settings, clock: Clock) -> AsyncIterator[Engine]:
    async with Engine(settings, clock=clock) as running:
        yield running


async def log_a_line(
    engine: Engine, namespace: str, flow_id: str, level: str = "INFO"
) -> ExecutionView:
    """An execution of ``namespace.flow_id`` that logs "Hello World" once at ``level``."""
    await engine.put_flow(
        f"""
id: {flow_id}
namespace: {namespace}
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    level: {level}
    message: Hello World
"""
    )
    started = await engine.start_execution(namespace, flow_id)
    view = await engine.wait(started.id, timeout=TIMEOUT)
    assert view.state == "COMPLETED"
    assert "Hello World" in await logged(engine, view.id)
    return view


async def logged(engine: Engine, execution_id: str) -> list[str]:
    return [
        line["message"]
        for event in await engine.events(execution_id)
        for line in event.data.get("logs", [])
    ]


async def purge(engine: Engine, file_name: str) -> ExecutionView:
    record = await engine.put_flow_file(VALIDS / file_name)
    started = await engine.start_execution(record.namespace, record.flow_id)
    view = await engine.wait(started.id, timeout=TIMEOUT)
    assert view.state == "COMPLETED", view.error  # Kestra: isSuccess()
    assert len(view.task_runs) == 1
    return view


async def test_purge_logs_without_arguments_purges_every_line_up_to_its_end_date(
    engine: Engine,
) -> None:
    """PurgeLogsTest#run_with_no_arguments (purge_logs_no_arguments.yaml): SUCCESS, one
    task run, a positive ``count``."""
    chatty = await log_a_line(engine, "namespace", "flowId")
    events_before = len(await engine.events(chatty.id))

    view = await purge(engine, "purge_logs_no_arguments.yaml")

    outputs = view.task_runs[0].outputs or {}
    assert outputs["count"] >= 1
    assert outputs["count"] == outputs["executionLogsCount"]
    assert outputs["nonExecutionLogsCount"] == 0
    assert await logged(engine, chatty.id) == []
    assert len(await engine.events(chatty.id)) == events_before  # the history stays whole


@pytest.mark.parametrize(
    ("namespace", "flow_id", "hours", "level", "count", "reason"),
    [
        ("purge.namespace", "purgeFlowId", 5, "INFO", 0, "The log is too recent to be found"),
        ("purge.namespace", "purgeFlowId", -5, "INFO", 0, "The log is too old to be found"),
        ("uncorrect.namespace", "purgeFlowId", 0, "INFO", 0, "The log has an incorrect namespace"),
        ("purge.namespace", "wrongFlowId", 0, "INFO", 0, "The log has an incorrect flow id"),
        ("purge.namespace", "purgeFlowId", 0, "WARN", 0, "The log has an incorrect LogLevel"),
        ("purge.namespace", "purgeFlowId", 0, "INFO", 1, "The log should be deleted"),
    ],
)
async def test_purge_logs_with_every_filter(
    engine: Engine,
    clock: Clock,
    namespace: str,
    flow_id: str,
    hours: int,
    level: str,
    count: int,
    reason: str,
) -> None:
    """PurgeLogsTest#run_with_full_arguments (purge_logs_full_arguments.yaml), each of
    Kestra's cases: only a line of purge.namespace/purgeFlowId, INFO or ERROR, logged
    within two hours of now, is purged."""
    clock.offset = hours * HOUR - (10.0 if hours == 0 else 0.0)
    chatty = await log_a_line(engine, namespace, flow_id, level)
    clock.offset = 0.0

    view = await purge(engine, "purge_logs_full_arguments.yaml")

    assert (view.task_runs[0].outputs or {})["count"] == count, reason
    assert ("Hello World" in await logged(engine, chatty.id)) is (count == 0)


async def test_purge_logs_never_reaches_another_organization(engine: Engine) -> None:
    theirs = await log_a_line(engine.as_org("globex"), "namespace", "flowId")

    view = await purge(engine, "purge_logs_no_arguments.yaml")

    assert (view.task_runs[0].outputs or {})["count"] == 0
    assert "Hello World" in await logged(engine.as_org("globex"), theirs.id)
