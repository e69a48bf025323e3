"""W3C trace context over HTTP: into the audit and the events, and OpenTelemetry spans.

The spans are recorded by the real OpenTelemetry SDK with its own in-memory
exporter, installed as the process's tracer provider (once: OpenTelemetry
allows one per process); each test tells its spans apart by a trace id of its own.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pausepoint.config import Settings
from pausepoint.testing import assert_eventually
from pausepoint.tracing import OFF, tracing_for
from tests.api.conftest import RunningServer
from tests.api.matrix_support import audit, gated_server, gates, start, wait_started, wait_state

CAUSED_BY_PAUSE = ("workflow.pausing", "workflow.paused")

_exporter: InMemorySpanExporter | None = None


def new_traceparent() -> tuple[str, str, str]:
    """A traceparent of a trace no other test uses: (header, trace id, parent span id)."""
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{parent_id}-01", trace_id, parent_id


@pytest.fixture
async def gated(db_path: Path) -> AsyncIterator[RunningServer]:
    async with gated_server(db_path) as server:
        yield server


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The SDK's in-memory exporter behind the process's tracer provider."""
    global _exporter
    if _exporter is None:
        _exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_exporter))
        trace.set_tracer_provider(provider)
    yield _exporter


def spans_of(exporter: InMemorySpanExporter, trace_id: str) -> list[ReadableSpan]:
    """pausepoint's spans in the trace (FastAPI records spans of its own there too)."""
    return [
        span
        for span in exporter.get_finished_spans()
        if span.context is not None
        and f"{span.context.trace_id:032x}" == trace_id
        and span.instrumentation_scope is not None
        and span.instrumentation_scope.name == "pausepoint"
    ]


async def events_of(http: httpx.AsyncClient, execution_id: str) -> list[dict[str, Any]]:
    reply = await http.get(f"/api/v1/executions/{execution_id}/events", params={"limit": 1000})
    assert reply.status_code == 200, reply.text
    items: list[dict[str, Any]] = reply.json()["items"]
    return items


async def paused_with(
    server: RunningServer, pause_path: str, headers: dict[str, str]
) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    """Start the gated flow, pause it at ``pause_path`` with ``headers`` while its task
    runs, let it land: the execution's id, its audit and its events."""
    key = gates.new_key("trace")
    async with server.client("acme", "operator") as http:
        execution_id = await start(http, "slow", {"key": key})
        await wait_started(key)
        reply = await http.post(pause_path.format(id=execution_id), json={}, headers=headers)
        assert reply.status_code == 202, reply.text
        gates.gate(key).release.set()
        await wait_state(http, execution_id, "PAUSED")
        return execution_id, await audit(http, execution_id), await events_of(http, execution_id)


@pytest.mark.parametrize(
    "pause_path", ["/api/v1/executions/{id}/pause", "/api/v1/tasks/{id}/pause"]
)
async def test_a_pause_with_a_traceparent_keeps_it_in_the_audit_and_the_events_it_causes(
    gated: RunningServer, pause_path: str
) -> None:
    traceparent, _, _ = new_traceparent()
    _, commands, events = await paused_with(gated, pause_path, {"traceparent": traceparent})
    [pause] = [c for c in commands if c["kind"] == "pause"]
    assert pause["traceparent"] == traceparent
    caused = [e for e in events if e["type"] in CAUSED_BY_PAUSE]
    assert [e["type"] for e in caused] == list(CAUSED_BY_PAUSE)
    assert all(e["data"]["traceparent"] == traceparent for e in caused)
    # The execution was started without one: what the pause did not cause carries none.
    started = next(e for e in events if e["type"] == "workflow.started")
    assert "traceparent" not in started["data"]


async def test_a_later_version_is_recorded_as_the_version_00_it_reads_as(
    gated: RunningServer,
) -> None:
    _, trace_id, parent_id = new_traceparent()
    later = f"01-{trace_id}-{parent_id}-01-something-new"
    _, commands, _ = await paused_with(
        gated, "/api/v1/executions/{id}/pause", {"traceparent": later}
    )
    [pause] = [c for c in commands if c["kind"] == "pause"]
    assert pause["traceparent"] == f"00-{trace_id}-{parent_id}-01"


@pytest.mark.parametrize(
    "malformed",
    [
        "00-not-a-trace-at-all",
        "FF-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
        f"00-{'0' * 32}-00f067aa0ba902b7-01",
        "",
    ],
)
async def test_a_malformed_traceparent_is_ignored_never_an_error(
    gated: RunningServer, malformed: str
) -> None:
    headers = {"traceparent": malformed, "tracestate": "rojo=1"}
    _, commands, events = await paused_with(gated, "/api/v1/tasks/{id}/pause", headers)
    [pause] = [c for c in commands if c["kind"] == "pause"]
    assert pause["traceparent"] is None
    assert not [e for e in events if "traceparent" in e["data"]]
    async with gated.client("acme", "viewer") as viewer:
        listed = await viewer.get("/api/v1/executions", headers=headers)
        assert listed.status_code == 200, listed.text


async def test_an_execution_started_with_a_traceparent_carries_it_in_its_events(
    gated: RunningServer,
) -> None:
    started_in, _, _ = new_traceparent()
    paused_by, _, _ = new_traceparent()
    key = gates.new_key("trace-start")
    async with gated.client("acme", "operator") as http:
        reply = await http.post(
            "/api/v1/executions",
            json={"namespace": "api.matrix", "flow_id": "slow", "inputs": {"key": key}},
            headers={"traceparent": started_in},
        )
        assert reply.status_code == 201, reply.text
        execution_id = reply.json()["id"]
        await wait_started(key)
        paused = await http.post(
            f"/api/v1/executions/{execution_id}/pause", headers={"traceparent": paused_by}
        )
        assert paused.status_code == 202, paused.text
        gates.gate(key).release.set()
        await wait_state(http, execution_id, "PAUSED")
        resumed = await http.post(f"/api/v1/executions/{execution_id}/resume", json={})
        assert resumed.status_code in (200, 202), resumed.text
        await wait_state(http, execution_id, "COMPLETED")
        events = await events_of(http, execution_id)
    by_type = {e["type"]: e["data"].get("traceparent") for e in events}
    assert by_type["workflow.started"] == started_in
    assert by_type["workflow.paused"] == paused_by
    # The resume came without one: what it caused is in the execution's own trace.
    assert by_type["workflow.resumed"] == started_in
    assert by_type["workflow.completed"] == started_in


async def test_with_opentelemetry_on_control_requests_and_task_runs_are_spans_in_the_trace(
    db_path: Path, spans: InMemorySpanExporter
) -> None:
    traceparent, trace_id, caller_span = new_traceparent()
    pause_parent = secrets.token_hex(8)
    key = gates.new_key("otel")
    async with (
        gated_server(db_path, otel_traces=True) as server,
        server.client("acme", "operator") as http,
    ):
        reply = await http.post(
            "/api/v1/executions",
            json={"namespace": "api.matrix", "flow_id": "slow", "inputs": {"key": key}},
            headers={"traceparent": traceparent, "tracestate": "rojo=00f067aa0ba902b7"},
        )
        assert reply.status_code == 201, reply.text
        execution_id = reply.json()["id"]
        await wait_started(key)
        paused = await http.post(
            f"/api/v1/tasks/{execution_id}/pause",
            headers={"traceparent": f"00-{trace_id}-{pause_parent}-01"},
        )
        assert paused.status_code == 202, paused.text
        gates.gate(key).release.set()
        await wait_state(http, execution_id, "PAUSED")

    def recorded() -> dict[str, ReadableSpan] | None:
        named = {span.name: span for span in spans_of(spans, trace_id)}
        wanted = ("pausepoint.Start", "pausepoint.Pause", "pausepoint.task_run")
        return named if all(name in named for name in wanted) else None

    named = await assert_eventually(recorded, what="the spans of the trace")
    start_span, pause_span, task_span = (
        named["pausepoint.Start"],
        named["pausepoint.Pause"],
        named["pausepoint.task_run"],
    )
    assert start_span.parent is not None and start_span.parent.is_remote
    assert f"{start_span.parent.span_id:016x}" == caller_span
    assert start_span.context is not None
    assert start_span.context.trace_state.get("rojo") == "00f067aa0ba902b7"
    assert pause_span.parent is not None and f"{pause_span.parent.span_id:016x}" == pause_parent
    assert pause_span.attributes is not None
    assert pause_span.attributes["pausepoint.target"] == execution_id
    assert task_span.parent is not None and f"{task_span.parent.span_id:016x}" == caller_span
    assert task_span.attributes is not None
    assert task_span.attributes["pausepoint.execution_id"] == execution_id
    assert task_span.attributes["pausepoint.task_type"] == "python"


async def test_without_opentelemetry_configured_nothing_is_recorded(
    gated: RunningServer, spans: InMemorySpanExporter
) -> None:
    # The process has an SDK tracer provider (the fixture), so only pausepoint's own
    # setting can be what keeps these requests out of it.
    traceparent, trace_id, _ = new_traceparent()
    execution_id, commands, _ = await paused_with(
        gated, "/api/v1/executions/{id}/pause", {"traceparent": traceparent}
    )
    assert any(c["traceparent"] == traceparent for c in commands)
    assert tracing_for(gated.engine.settings) is OFF
    assert [s.name for s in spans_of(spans, trace_id)] == []
    assert tracing_for(Settings(otel_traces=False)) is OFF
    assert execution_id


async def test_a_cancel_with_a_traceparent_marks_its_events_until_the_execution_ends(
    gated: RunningServer,
) -> None:
    traceparent, _, _ = new_traceparent()
    key = gates.new_key("trace-cancel")
    async with gated.client("acme", "operator") as http:
        execution_id = await start(http, "slow", {"key": key})
        await wait_started(key)
        reply = await http.post(
            f"/api/v1/executions/{execution_id}/cancel", headers={"traceparent": traceparent}
        )
        assert reply.status_code == 202, reply.text
        await wait_state(http, execution_id, "CANCELLED")
        events = await events_of(http, execution_id)
    # ``workflow.cancelled`` is written in a later step than the cancel, once the task
    # run has ended: the stop remembers whose it was.
    caused = {e["type"]: e["data"].get("traceparent") for e in events}
    assert caused["workflow.cancelling"] == traceparent
    assert caused["workflow.cancelled"] == traceparent
