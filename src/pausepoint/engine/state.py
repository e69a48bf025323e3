"""The engine's state: plain JSON-serialisable data, and the helpers that build it.

Task runs record the path of their task rather than a copy of it, and a block
(a list of tasks run one after another or side by side) records only its
cursor and the children still active, so a checkpoint stays small however long
the execution runs.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pausepoint.engine.flowindex import FlowIndex
from pausepoint.engine.model import ExecutionStatus, TaskRunState

S = ExecutionStatus
T = TaskRunState
STATE_VERSION = 1
PHASES = ("main", "errors", "finally")


@dataclass(frozen=True)
class EngineEnv:
    """What the engine reads besides the state: the flow and the secrets.

    Secrets are passed here rather than stored so that no checkpoint holds them.
    """

    index: FlowIndex
    secrets: Mapping[str, str] = field(default_factory=dict)


@functools.lru_cache(maxsize=4096)  # a step formats the same few instants again and again
def iso(at: float) -> str:
    return (
        datetime.fromtimestamp(at, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def new_state(
    execution_id: str,
    index: FlowIndex,
    *,
    inputs: dict[str, Any],
    labels: dict[str, str],
    at: float,
) -> dict[str, Any]:
    """The state of a freshly created (QUEUED) execution."""
    flow = index.flow
    return {
        "v": STATE_VERSION,
        "execution_id": execution_id,
        "flow": {"namespace": flow.namespace, "id": flow.id, "revision": flow.revision},
        "status": S.QUEUED.value,
        "inputs": inputs,
        "labels": labels,
        "created_at": at,
        "started_at": None,
        "ended_at": None,
        "phase": "main",
        "outcome": None,
        "error": None,
        "stop": None,
        "checkpoint": None,
        "pause_reason": None,
        "warning": False,
        "blocks": {"main": new_block("tasks", len(flow.tasks))},
        "next_run": 1,
        "pauses": {},
        "timers": {},
        "inflight": [],
        "context": {"messages": []},
        "result": None,
        "task_runs": {},
        "outputs": {},
    }


def new_block(
    list_path: str | None,
    count: int,
    *,
    parallel: bool = False,
    concurrency: int = 0,
) -> dict[str, Any]:
    return {
        "list": list_path,
        "parallel": parallel,
        "concurrency": concurrency,
        "count": count,
        "next": 0,
        "active": [],
        "failed": None,
    }


def rebuild_outputs(state: dict[str, Any]) -> None:
    """Recompute the ``outputs`` index from the task runs (after loading a checkpoint)."""
    outputs: dict[str, Any] = {}
    for run in state["task_runs"].values():
        if run["state"] in (T.SUCCESS, T.WARNING) and run.get("outputs") is not None:
            index_output(outputs, run)
    state["outputs"] = outputs


def index_output(outputs: dict[str, Any], run: dict[str, Any]) -> None:
    if run.get("type") == "iteration":
        return
    if "value" in run:
        outputs.setdefault(run["task_id"], {})[str(run["value"])] = run["outputs"]
    else:
        outputs[run["task_id"]] = run["outputs"]


CONTAINERS = frozenset(
    {"iteration", "pause", "sequential", "parallel", "if", "switch", "foreach", "agent"}
)


def switch_key(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def redact(values: dict[str, Any], secret_ids: set[str]) -> dict[str, Any]:
    redacted: dict[str, Any] = json.loads(json.dumps(values))
    for dotted in secret_ids:
        *parents, leaf = dotted.split(".")
        node: Any = redacted
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
            if node is None:
                break
        if isinstance(node, dict) and leaf in node:
            node[leaf] = "******"
    return redacted


MASK = "******"
SCRUB_MIN_LENGTH = 4  # shorter values would mask ordinary words


def scrub(value: Any, secrets: Mapping[str, str]) -> Any:
    """``value`` with every occurrence of a secret's value replaced by ``******``."""
    needles = sorted(
        (v for v in secrets.values() if isinstance(v, str) and len(v) >= SCRUB_MIN_LENGTH),
        key=len,
        reverse=True,
    )
    if not needles:
        return value
    return _scrub(value, needles)


def _scrub(value: Any, needles: list[str]) -> Any:
    if isinstance(value, str):
        for needle in needles:
            if needle in value:
                value = value.replace(needle, MASK)
        return value
    if isinstance(value, dict):
        return {key: _scrub(item, needles) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrub(item, needles) for item in value]
    return value
