"""Shannon's routes: its task API over pausepoint's executions, in Shannon's shapes.

- ``POST /api/v1/tasks`` starts the flow the ``shannon_task_flow`` setting names
  (501 saying how to configure it when none is);
- ``GET /api/v1/tasks`` (paged), ``GET /api/v1/tasks/{id}`` (status, result, error),
  ``GET /api/v1/tasks/{id}/events``, ``GET /api/v1/tasks/{id}/control-state``;
- ``POST /api/v1/tasks/{id}/pause|resume|cancel`` → 202 ``{success, message, task_id}``;
- ``GET /api/v1/stream/sse?workflow_id=&types=&last_event_id=`` (Shannon's event names);
- ``POST /api/v1/approvals/decision``: approve or deny an open pause point.

Errors are ``{"error": …}``; malformed input stays FastAPI's 422 naming the field.
The names are mapped in ``api/shannon_shapes.py``; docs/compatibility.md lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from pausepoint.api.app import RATE_LIMITED
from pausepoint.api.deps import IdempotencyKey, call, call_replayed, engine_of
from pausepoint.api.routes.dialect import SoftCaller, control_as
from pausepoint.api.routes.events import SSE_HEADERS, parse_last_event_id, timing
from pausepoint.api.schemas import (
    CancelBody,
    PauseBody,
    ResumeBody,
    ShannonControlState,
    ShannonError,
    ShannonReply,
    control_request,
)
from pausepoint.api.shannon_shapes import (
    SHANNON_SESSION_LABEL,
    SHANNON_STATUSES,
    ShannonDecisionBody,
    ShannonDecisionReply,
    ShannonEvent,
    ShannonEventList,
    ShannonFrames,
    ShannonSubmitBody,
    ShannonSubmitReply,
    ShannonTaskList,
    ShannonTaskStatus,
    shannon_event,
    states_with_status,
    submit_inputs,
    submit_labels,
    task_status,
    task_status_reply,
    task_summary,
)
from pausepoint.api.sse import execution_events
from pausepoint.errors import FieldError, InvalidInput, NotFound, PausepointError, Unauthorized
from pausepoint.models import ControlResult
from pausepoint.service.operations import (
    AuditRequest,
    EventsRequest,
    GetExecutionRequest,
    GetStateRequest,
    ListExecutionsRequest,
    OpenStreamRequest,
    StartRequest,
)
from pausepoint.service.requests import DecideRequest, PauseRequest

router = APIRouter(tags=["Shannon"])


SHANNON_ERRORS: dict[int | str, dict[str, Any]] = {
    **{status: {"model": ShannonError} for status in (401, 403, 404, 409)},
    429: RATE_LIMITED,
}
SHANNON_WORDS = {401: "Unauthorized", 403: "Forbidden", 404: "Task not found"}
NOT_CONFIGURED = (
    "no flow answers Shannon tasks on this server: set PAUSEPOINT_SHANNON_TASK_FLOW="
    "<namespace>/<flow_id> (the Settings field shannon_task_flow) to a flow whose inputs are "
    "query (STRING) and, optionally, session_id (STRING) and context (JSON)"
)
# Reads page through the executions this many at a time (the most a list request takes).
LIST_PAGE = 500


def shannon_error(
    task_id: str = "", not_found: str = SHANNON_WORDS[404]
) -> Callable[[PausepointError], JSONResponse]:
    """Render a pausepoint error as Shannon's ``{"error": …}``, saying "task" for the execution."""

    def render(error: PausepointError) -> JSONResponse:
        status = error.http_status
        words = {**SHANNON_WORDS, 404: not_found}
        message = words.get(status) or error.message.replace(f"execution {task_id}", "task")
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(error, Unauthorized) else None
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    return render


def field_error(where: tuple[str, str], message: str) -> InvalidInput:
    return InvalidInput(f"{where[1]}: {message}", [FieldError(where, message)])


def shannon_reply(task_id: str, message: str) -> Callable[[ControlResult], dict[str, Any]]:
    return lambda _: ShannonReply(success=True, message=message, task_id=task_id).model_dump()


@router.post(
    "/api/v1/tasks/{task_id}/pause",
    status_code=202,
    response_model=ShannonReply,
    responses=SHANNON_ERRORS,
)
async def shannon_pause(
    request: Request,
    task_id: str,
    caller: SoftCaller,
    idempotency_key: IdempotencyKey = None,
    body: PauseBody | None = None,
) -> JSONResponse:
    """Shannon: pause the task at its next checkpoint; 409 if it is already paused or pausing."""
    return await control_as(
        request,
        caller,
        idempotency_key,
        PauseRequest(
            execution_id=task_id, reason=(body or PauseBody()).reason, refuse_when_paused=True
        ),
        shape=shannon_reply(task_id, "Pause signal sent"),
        error=shannon_error(task_id),
    )


@router.post(
    "/api/v1/tasks/{task_id}/resume",
    status_code=202,
    response_model=ShannonReply,
    responses=SHANNON_ERRORS,
)
async def shannon_resume(
    request: Request,
    task_id: str,
    caller: SoftCaller,
    idempotency_key: IdempotencyKey = None,
    body: ResumeBody | None = None,
) -> JSONResponse:
    """Shannon: resume a paused task."""
    return await control_as(
        request,
        caller,
        idempotency_key,
        control_request(body or ResumeBody(), task_id),
        shape=shannon_reply(task_id, "Resume signal sent"),
        error=shannon_error(task_id),
    )


@router.post(
    "/api/v1/tasks/{task_id}/cancel",
    status_code=202,
    response_model=ShannonReply,
    responses=SHANNON_ERRORS,
)
async def shannon_cancel(
    request: Request,
    task_id: str,
    caller: SoftCaller,
    idempotency_key: IdempotencyKey = None,
    body: CancelBody | None = None,
) -> JSONResponse:
    """Shannon: cancel the task cooperatively."""
    return await control_as(
        request,
        caller,
        idempotency_key,
        control_request(body or CancelBody(), task_id),
        shape=shannon_reply(task_id, "Cancel signal sent"),
        error=shannon_error(task_id),
    )


@router.get(
    "/api/v1/tasks/{task_id}/control-state",
    response_model=ShannonControlState,
    responses=SHANNON_ERRORS,
)
async def shannon_control_state(
    request: Request, task_id: str, caller: SoftCaller
) -> ShannonControlState | JSONResponse:
    """Shannon: the task's state, whether it is paused or cancelled, since when, by whom, why."""
    if isinstance(caller, PausepointError):
        return shannon_error(task_id)(caller)
    try:
        state = await call(request, caller, GetStateRequest(execution_id=task_id))
        commands = await call(request, caller, AuditRequest(execution_id=task_id))
    except PausepointError as error:
        return shannon_error(task_id)(error)
    # The newest accepted pause and cancel (or terminate) say when, by whom and why;
    # a refused one changed nothing.
    accepted = [c for c in commands if c.status != "rejected"]
    pause = next((c for c in reversed(accepted) if c.kind == "pause"), None)
    stop = next((c for c in reversed(accepted) if c.kind in ("cancel", "terminate")), None)
    is_paused = state.state in ("PAUSING", "PAUSED")
    is_cancelled = state.state in ("CANCELLING", "CANCELLED", "TERMINATED")
    return ShannonControlState(
        task_id=task_id,
        state=state.state,
        paused=state.state == "PAUSED",
        checkpoint=state.checkpoint,
        pause_reason=state.pause_reason,
        is_paused=is_paused,
        is_cancelled=is_cancelled,
        paused_at=pause.created_at if is_paused and pause else None,
        paused_by=pause.actor if is_paused and pause else None,
        cancel_reason=stop.reason if is_cancelled and stop else None,
        cancelled_by=stop.actor if is_cancelled and stop else None,
    )


# -- tasks: submit, list, status, events -------------------------------------------------


@router.post(
    "/api/v1/tasks",
    response_model=ShannonSubmitReply,
    responses={
        **SHANNON_ERRORS,
        501: {"model": ShannonError, "description": "No flow is configured for Shannon tasks."},
    },
)
async def shannon_submit(
    request: Request,
    body: ShannonSubmitBody,
    caller: SoftCaller,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Shannon: start the configured flow with the query (``shannon_task_flow``)."""
    render = shannon_error()
    if isinstance(caller, PausepointError):
        return render(caller)
    configured = engine_of(request).settings.shannon_task_flow
    try:
        # Whoever may not start executions hears so before hearing what is configured.
        caller.require(StartRequest.required_role, StartRequest.action)
        if configured is None:
            return JSONResponse({"error": NOT_CONFIGURED}, status_code=501)
        namespace, flow_id = configured.split("/", 1)
        start = StartRequest(
            namespace=namespace,
            flow_id=flow_id,
            inputs=submit_inputs(body),
            labels=submit_labels(body),
        )
        view, headers = await call_replayed(request, caller, start, idempotency_key)
    except NotFound:
        message = (
            f"the flow {configured} that shannon_task_flow names is not stored for this "
            f"organization; store it, or point PAUSEPOINT_SHANNON_TASK_FLOW at another flow"
        )
        return JSONResponse({"error": message}, status_code=501)
    except InvalidInput as invalid:
        if invalid.errors:
            raise
        return render(invalid)
    except PausepointError as error:
        return render(error)
    reply = ShannonSubmitReply(
        task_id=view.id,
        workflow_id=view.id,
        status=task_status(view.state),
        message="Task submitted",
        created_at=view.created_at,
    )
    headers = {**headers, "X-Workflow-ID": view.id}
    if body.session_id:
        headers["X-Session-ID"] = body.session_id
    return JSONResponse(reply.model_dump(mode="json"), headers=headers)


@router.get("/api/v1/tasks", response_model=ShannonTaskList, responses=SHANNON_ERRORS)
async def shannon_list_tasks(
    request: Request,
    caller: SoftCaller,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    status: Annotated[
        str | None, Query(description=f"One of {', '.join(SHANNON_STATUSES)}.")
    ] = None,
    session_id: Annotated[str | None, Query(max_length=128)] = None,
) -> ShannonTaskList | JSONResponse:
    """Shannon: the organization's tasks, newest first, ``limit`` from ``offset``, and how
    many there are in all (counted by reading them all: a cost that grows with the list)."""
    if isinstance(caller, PausepointError):
        return shannon_error()(caller)
    states: tuple[str, ...] = ()
    if status:
        matched = states_with_status(status)
        if matched is None:
            known = ", ".join(SHANNON_STATUSES)
            raise field_error(("query", "status"), f"unknown status {status!r}; one of {known}")
        states = matched
    labels = {SHANNON_SESSION_LABEL: session_id} if session_id else {}
    tasks, total, cursor = [], 0, None
    try:
        while True:
            page = await call(
                request,
                caller,
                ListExecutionsRequest(states=states, labels=labels, limit=LIST_PAGE, cursor=cursor),
            )
            for item in page.items:
                if offset <= total < offset + limit:
                    tasks.append(task_summary(item))
                total += 1
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    except PausepointError as error:
        return shannon_error()(error)
    return ShannonTaskList(tasks=tasks, total_count=total)


@router.get("/api/v1/tasks/{task_id}", response_model=ShannonTaskStatus, responses=SHANNON_ERRORS)
async def shannon_task(request: Request, task_id: str, caller: SoftCaller) -> Response:
    """Shannon: the task's status (``TASK_STATUS_*``), result, error and timestamps."""
    render = shannon_error(task_id)
    if isinstance(caller, PausepointError):
        return render(caller)
    try:
        execution = await call(request, caller, GetExecutionRequest(execution_id=task_id))
    except PausepointError as error:
        return render(error)
    reply = task_status_reply(execution)
    return JSONResponse(reply.model_dump(mode="json"), headers={"X-Workflow-ID": task_id})


@router.get(
    "/api/v1/tasks/{task_id}/events", response_model=ShannonEventList, responses=SHANNON_ERRORS
)
async def shannon_task_events(
    request: Request,
    task_id: str,
    caller: SoftCaller,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> ShannonEventList | JSONResponse:
    """Shannon: the task's stored events, oldest first, ``limit`` from ``offset``."""
    render = shannon_error(task_id)
    if isinstance(caller, PausepointError):
        return render(caller)
    try:
        # Sequence numbers count the stored events from 1: the offset-th is seq `offset`.
        events = await call(
            request, caller, EventsRequest(execution_id=task_id, after=offset, limit=limit)
        )
    except PausepointError as error:
        return render(error)
    shown = [ShannonEvent.model_validate(shannon_event(event)) for event in events]
    return ShannonEventList(events=shown, count=len(shown))


# -- the live stream ----------------------------------------------------------------------


@router.get(
    "/api/v1/stream/sse",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Shannon's SSE: ``id: <seq>``, ``event: <TYPE>``, ``data: {…}``.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **SHANNON_ERRORS,
    },
)
async def shannon_stream(
    request: Request,
    caller: SoftCaller,
    # Checked once the caller is known: no credentials is 401 whatever else is missing.
    workflow_id: Annotated[
        str | None, Query(max_length=200, description="The task to stream (required).")
    ] = None,
    types: Annotated[
        str | None, Query(max_length=2000, description="Comma-separated Shannon event types.")
    ] = None,
    last_event_id: Annotated[
        str | None, Query(max_length=40, description="Resume after this event (its seq).")
    ] = None,
    last_event_header: Annotated[str | None, Header(alias="Last-Event-ID", max_length=40)] = None,
) -> Response:
    """Shannon: the task's events live, in Shannon's names, ending after its last one."""
    render = shannon_error(workflow_id or "")
    if isinstance(caller, PausepointError):
        return render(caller)
    if not workflow_id:
        raise field_error(("query", "workflow_id"), "required: the task whose events to stream")
    resume = parse_last_event_id(last_event_id, ("query", "last_event_id"))
    if resume is None:
        resume = parse_last_event_id(last_event_header)
    wanted = frozenset(name.strip() for name in (types or "").split(",") if name.strip())
    try:
        engine = await call(request, caller, OpenStreamRequest(execution_id=workflow_id))
    except PausepointError as error:
        return render(error)
    frames = execution_events(
        engine,
        workflow_id,
        after=resume or 0,
        timing=timing(request),
        style=ShannonFrames(wanted),
    )
    return StreamingResponse(frames, media_type="text/event-stream", headers=SSE_HEADERS)


# -- approvals ----------------------------------------------------------------------------


def decision_reply(body: ShannonDecisionBody) -> Callable[[ControlResult], dict[str, Any]]:
    def shape(result: ControlResult) -> dict[str, Any]:
        return ShannonDecisionReply(
            success=True,
            message=result.message,
            workflow_id=body.workflow_id,
            run_id=body.run_id,
            approval_id=body.approval_id,
        ).model_dump(mode="json")

    return shape


@router.post(
    "/api/v1/approvals/decision", response_model=ShannonDecisionReply, responses=SHANNON_ERRORS
)
async def shannon_decision(
    request: Request,
    body: ShannonDecisionBody,
    caller: SoftCaller,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Shannon: approve (resume) or deny an open pause point: ``approval_id`` names it, in
    the execution ``workflow_id``. 409 if it is not open."""
    command = DecideRequest(
        execution_id=body.workflow_id,
        pause_id=body.approval_id,
        approved=body.approved,
        reason=body.feedback,
    )
    return await control_as(
        request,
        caller,
        idempotency_key,
        command,
        shape=decision_reply(body),
        error=shannon_error(body.workflow_id, not_found="Workflow or approval not found"),
        status_code=200,
    )
