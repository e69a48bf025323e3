"""Prometheus metrics in the text exposition format, without a client library.

- ``pausepoint_executions{state}``: a gauge counted from the store at scrape time;
- ``pausepoint_control_requests_total{op,result}``: counted by a middleware from
  the path and status of every control request (single, seed-compatible and bulk);
- ``pausepoint_checkpoint_seconds``: how long each group-commit transaction of
  checkpoints took, as the runtime's group committer reports it.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pausepoint.service.engine import Engine

CHECKPOINT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
STATES = (
    "QUEUED",
    "RUNNING",
    "PAUSING",
    "PAUSED",
    "CANCELLING",
    "COMPLETED",
    "WARNING",
    "FAILED",
    "CANCELLED",
    "TERMINATED",
    "TIMED_OUT",
)

_CONTROL_PATHS = (
    re.compile(r"^/api/v1/executions/(?!bulk/)[^/]+/(?P<op>pause|resume|cancel|terminate|inject)$"),
    re.compile(r"^/api/v1/executions/[^/]+/(?P<op>message)$"),
    re.compile(r"^/api/v1/tasks/[^/]+/(?P<op>pause|resume|cancel)$"),
    re.compile(r"^/executions/[^/]+/(?P<op>pause|resume|cancel|inject)$"),
)

RESULTS = {401: "unauthorized", 403: "forbidden", 404: "not_found", 409: "conflict", 422: "invalid"}


def result_of(status: int) -> str:
    if 200 <= status < 300:
        return "accepted"
    return RESULTS.get(status, "error")


def control_op(method: str, path: str) -> str | None:
    """The control operation a request performs, or None for any other request."""
    if method != "POST":
        return None
    for pattern in _CONTROL_PATHS:
        match = pattern.match(path)
        if match:
            op = match["op"]
            return "inject" if op == "message" else op
    return None


@dataclass
class Histogram:
    buckets: tuple[float, ...] = CHECKPOINT_BUCKETS
    counts: list[int] = field(default_factory=lambda: [0] * len(CHECKPOINT_BUCKETS))
    total: float = 0.0
    count: int = 0

    def observe(self, seconds: float) -> None:
        for i, bound in enumerate(self.buckets):
            if seconds <= bound:
                self.counts[i] += 1
        self.total += seconds
        self.count += 1

    def render(self, name: str) -> list[str]:
        lines = [f"# TYPE {name} histogram"]
        lines += [
            f'{name}_bucket{{le="{bound}"}} {n}'
            for bound, n in zip(self.buckets, self.counts, strict=True)
        ]
        lines.append(f'{name}_bucket{{le="+Inf"}} {self.count}')
        lines.append(f"{name}_sum {self.total}")
        lines.append(f"{name}_count {self.count}")
        return lines


@dataclass
class Metrics:
    control_requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    checkpoint_seconds: Histogram = field(default_factory=Histogram)

    def count_control(self, op: str, status: int) -> None:
        self.control_requests[(op, result_of(status))] += 1

    async def render(self, engine: Engine) -> str:
        by_state = await engine.count_executions_by_state()
        lines = [
            "# HELP pausepoint_executions Executions by state (all organizations).",
            "# TYPE pausepoint_executions gauge",
        ]
        lines += [
            f'pausepoint_executions{{state="{state}"}} {by_state.get(state, 0)}' for state in STATES
        ]
        lines += [
            "# HELP pausepoint_control_requests_total Control requests by operation and result.",
            "# TYPE pausepoint_control_requests_total counter",
        ]
        lines += [
            f'pausepoint_control_requests_total{{op="{op}",result="{result}"}} {n}'
            for (op, result), n in sorted(self.control_requests.items())
        ]
        lines.append("# HELP pausepoint_checkpoint_seconds Duration of checkpoint transactions.")
        lines += self.checkpoint_seconds.render("pausepoint_checkpoint_seconds")
        return "\n".join(lines) + "\n"


def time_checkpoints(engine: Engine) -> Histogram:
    """A histogram of ``engine``'s checkpoint transactions, fed by its group committer."""
    histogram = Histogram()
    engine.observe_checkpoints(histogram.observe)
    return histogram


class ControlMetricsMiddleware:
    """Pure ASGI: counts control requests by operation and status, touches nothing else."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        op = (
            control_op(scope.get("method", ""), scope.get("path", ""))
            if scope["type"] == "http"
            else None
        )
        if op is None:
            await self.app(scope, receive, send)
            return
        status = 500

        async def recording_send(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            self.metrics.count_control(op, status)
