"""The public shapes of stored executions, task runs and events."""

from __future__ import annotations

import base64
from typing import Any

from pausepoint.engine.interpreter import EngineEnv, iso
from pausepoint.engine.state import Masker, masker, shown_pause_outputs
from pausepoint.errors import FieldError, InvalidInput
from pausepoint.models import (
    EventView,
    TaskRunView,
)
from pausepoint.service.core import iso_or_none
from pausepoint.store.records import (  # re-exported for the API
    EventRecord,
    ExecutionRecord,
    FlowRecord,
)
from pausepoint.wire import ExecutionSummary, FlowRecordView


def masker_for(state: dict[str, Any], env: EngineEnv) -> Masker:
    """Masks what the execution's engine masks: its secrets and SECRET-typed input values."""
    return masker(env.secrets.values(), state.get("secret_values") or ())


def shown_run(run: dict[str, Any], env: EngineEnv, mask: Masker) -> dict[str, Any]:
    """Pause and approval task runs keep their inputs for later tasks: show them redacted."""
    if run.get("type") == "approval" and run.get("outputs"):
        return {**run, "outputs": mask(run["outputs"])}
    if run.get("type") != "pause" or not run.get("outputs"):
        return run
    specs = getattr(env.index.task(run["path"]), "on_resume", ())
    return {**run, "outputs": shown_pause_outputs(specs, run["outputs"], mask)}


def task_run_view(run: dict[str, Any]) -> TaskRunView:
    # Built from the engine's own records, whose types it guarantees: validating each
    # of an execution's task runs again was most of the cost of reading it.
    return TaskRunView.model_construct(
        id=run["id"],
        task_id=run["task_id"],
        type=run["type"],
        state=run["state"],
        attempt=run["attempt"],
        parent=run.get("parent"),
        value=run.get("value"),
        started_at=iso_or_none(run.get("started_at")),
        ended_at=iso_or_none(run.get("ended_at")),
        outputs=run.get("outputs"),
        error=run.get("error"),
        log_file=run.get("log_file"),
    )


def first_failure(runs: list[dict[str, Any]]) -> str | None:
    for run in runs:
        if (
            run["state"] == "FAILED"
            and run.get("error")
            and run["type"]
            not in (
                "sequential",
                "parallel",
                "if",
                "switch",
                "foreach",
                "iteration",
            )
        ):
            return f"task '{run['task_id']}': {run['error']}"
    return None


def event_view(event: EventRecord) -> EventView:
    """The public shape of a stored event."""
    return EventView(
        execution_id=event.execution_id,
        seq=event.seq,
        type=event.type,
        at=iso(event.at),
        data=event.data,
    )


def flow_record_view(record: FlowRecord) -> FlowRecordView:

    return FlowRecordView(
        namespace=record.namespace,
        id=record.flow_id,
        revision=record.revision,
        source=record.source,
        created_at=iso(record.created_at),
    )


def execution_summary(record: ExecutionRecord) -> ExecutionSummary:

    duration = None
    if record.started_at is not None:
        end = record.ended_at if record.ended_at is not None else record.updated_at
        duration = int((end - record.started_at) * 1000)
    return ExecutionSummary(
        id=record.id,
        namespace=record.namespace,
        flow_id=record.flow_id,
        flow_revision=record.flow_revision,
        state=record.status,
        labels=record.labels,
        created_at=iso(record.created_at),
        started_at=iso(record.started_at) if record.started_at is not None else None,
        ended_at=iso(record.ended_at) if record.ended_at is not None else None,
        duration_ms=duration,
    )


def encode_cursor(record: ExecutionRecord) -> str:
    return base64.urlsafe_b64encode(f"{record.created_at!r}|{record.id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        created, _, execution_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return float(created), execution_id
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput(
            "invalid cursor", [FieldError(("query", "cursor"), "not a cursor from a previous page")]
        ) from None


__all__ = [
    "ExecutionRecord",
    "FlowRecord",
    "decode_cursor",
    "encode_cursor",
    "event_view",
    "execution_summary",
    "first_failure",
    "flow_record_view",
    "masker_for",
    "shown_run",
    "task_run_view",
]
