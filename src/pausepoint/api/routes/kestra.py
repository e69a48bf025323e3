"""Kestra's execution-control API under ``/api/v1/{tenant}/``, as Kestra's clients call it.

Flows (create, update, read, search, validate, delete from YAML), executions
(create with multipart inputs and labels, read, search with Kestra's filters,
pause, resume with multipart ``onResume`` inputs and its validate variant, kill,
follow as SSE), and bulk pause/resume/kill by ids and by query. Replies are
Kestra's shapes (``api/kestra_shapes.py``); errors are Micronaut's
``{message, _links, _embedded}`` that Kestra answers with.

The tenant ``main`` is the default organization; any organization's name also
works for its own callers. Another organization's tenant is "not found", as an
unknown one is, and an execution or flow of another organization too.
Every operation goes through the control plane (roles, tenancy, audit,
idempotency); these routes only translate.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Scope

from pausepoint.api.deps import Caller, IdempotencyKey, call, call_replayed, engine_of
from pausepoint.api.kestra_shapes import (
    FORM_TYPES,
    KESTRA_ENDED,
    ExecutionFilter,
    flow_sources,
    form_inputs,
    form_parts,
    kestra_error,
    kestra_error_of,
    kestra_execution,
    kestra_flow,
    media_type,
    parse_execution_filters,
    parse_labels,
)
from pausepoint.api.routes.events import SSE_HEADERS, timing, wants_stream
from pausepoint.api.routes.files import FILE_BODY, StorageUri, execution_file, store_namespace_file
from pausepoint.api.routes.files import Path as FilePath
from pausepoint.api.routes.flows import flow_source
from pausepoint.api.sse import comment, execution_events
from pausepoint.errors import FieldError, FlowError, InvalidInput, NotFound, PausepointError
from pausepoint.flow import load_flow
from pausepoint.models import ExecutionView
from pausepoint.service.auth import Principal
from pausepoint.service.engine import DEFAULT_ORG, Engine
from pausepoint.service.operations import (
    BulkRequest,
    DeleteFlowRequest,
    EventsRequest,
    GetExecutionRequest,
    GetFlowRequest,
    ListExecutionsRequest,
    ListFlowsRequest,
    OpenStreamRequest,
    Operation,
    PutFlowRequest,
    StartRequest,
    UploadInputRequest,
    ValidateResumeRequest,
)
from pausepoint.service.requests import (
    PauseRequest,
    ResumeRequest,
    TerminateRequest,
    VoteRequest,
)
from pausepoint.service.triggers import WebhookCall, answer_webhook
from pausepoint.wire import ExecutionSummary, KestraReviewBody

# What a kill records as the reason of the terminate it is (Kestra's kill takes none).
KILL_REASON = "killed through Kestra's API"
MAIN_TENANT = "main"
HISTORY_EVENTS = 1000  # the log events read for an execution's state histories
SEARCH_COUNT_LIMIT = 10_000  # a search counts its matches up to this many


class KestraError(BaseModel):
    """Micronaut's JSON error, as Kestra answers: the message, a link to the request, and
    (for invalid input) one error per field with its dotted ``path``."""

    model_config = ConfigDict(populate_by_name=True)

    message: str
    links: dict[str, Any] = Field(alias="_links")
    embedded: dict[str, Any] | None = Field(default=None, alias="_embedded")


class BulkInvalid(BaseModel):
    message: str
    invalids: list[dict[str, Any]]


KESTRA_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": KestraError, "description": words}
    for status, words in (
        (400, "A request Kestra refuses as a whole."),
        (401, "No or bad credentials."),
        (403, "The caller's role is too low."),
        (404, "Unknown tenant or id (or another organization's)."),
        (409, "Not legal in the execution's state."),
        (413, "Request body too large."),
        (415, "Inputs not sent as a form."),
        (422, "Invalid input: each field's path in _embedded.errors."),
        (429, "Too many failed authentications from this client."),
        (431, "Request headers too large."),
    )
}


class KestraRoute(APIRoute):
    """A route whose every error, authentication and validation included, is Kestra's shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def kestra_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except PausepointError as error:
                return kestra_error_response(request, error)
            except RequestValidationError as error:
                errors = [
                    FieldError(tuple(e.get("loc", ())), str(e.get("msg", "")))
                    for e in error.errors()
                ]
                invalid = InvalidInput("; ".join(map(str, errors)) or "invalid request", errors)
                return kestra_error_response(request, invalid)
            except StarletteHTTPException as error:
                status = 422 if error.status_code == 400 else error.status_code
                body = kestra_error(status, str(error.detail), request.url.path)
                return JSONResponse(body, status_code=status, headers=error.headers)

        return kestra_handler


class KestraFormRoute(KestraRoute):
    """A Kestra route sharing a path with a native JSON route: it matches only form bodies."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        headers = dict(scope.get("headers") or [])
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        if media_type(content_type) not in FORM_TYPES:
            return Match.NONE, {}
        return super().matches(scope)


def kestra_error_response(request: Request, error: PausepointError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if error.http_status == 401 else None
    return JSONResponse(
        kestra_error_of(error, request.url.path), status_code=error.http_status, headers=headers
    )


router = APIRouter(
    prefix="/api/v1/{tenant}", tags=["Kestra"], route_class=KestraRoute, responses=KESTRA_RESPONSES
)
# Kestra's older, untenanted paths (seed 004 resumes at /api/v1/executions/{id}/resume).
legacy = APIRouter(
    prefix="/api/v1/executions",
    tags=["Kestra"],
    route_class=KestraRoute,
    responses=KESTRA_RESPONSES,
)


async def tenant_caller(tenant: str, caller: Caller) -> Principal:
    """The caller, once ``tenant`` names their organization (``main`` is the default one).

    Any other tenant is "not found", whether it exists or not.
    """
    organization = DEFAULT_ORG if tenant == MAIN_TENANT else tenant
    if organization != caller.org_id:
        raise NotFound(f"tenant {tenant!r} not found")
    return caller


TenantCaller = Annotated[Principal, Depends(tenant_caller)]

FORM_BODY = {
    "requestBody": {
        "required": False,
        "description": "Inputs, one form field each (values as text, typed by the flow).",
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "additionalProperties": {"type": "string"}}
            }
        },
    }
}
YAML_BODY = {
    "requestBody": {
        "required": True,
        "description": "The flow as YAML text.",
        "content": {"application/x-yaml": {"schema": {"type": "string"}}},
    }
}


async def inputs_for(
    request: Request, caller: Principal, operation: type[Operation[Any]]
) -> dict[str, str]:
    """The form's inputs for ``operation``. A caller whose role the operation's own rule
    refuses hears that (403) before anything about the body, as the chain would say it."""
    caller.require(operation.required_role, operation.action)
    return form_inputs(await request.body(), request.headers.get("content-type", ""))


async def snapshot(request: Request, caller: Principal, execution_id: str) -> dict[str, Any]:
    """Kestra's ``Execution`` of ``execution_id`` as the caller may read it."""
    view = await call(request, caller, GetExecutionRequest(execution_id=execution_id))
    events = await call(
        request, caller, EventsRequest(execution_id=execution_id, limit=HISTORY_EVENTS)
    )
    return kestra_execution(view, events)


async def engine_snapshot(engine: Engine, execution_id: str) -> dict[str, Any]:
    """The same from an engine already scoped to the caller (inside a stream)."""
    view = await engine.execution(execution_id)
    return kestra_execution(view, await engine.events(execution_id, limit=HISTORY_EVENTS))


# -- flows ----------------------------------------------------------------------------


def parsed_flow(source: str) -> tuple[str, str]:
    flow = load_flow(source, source="<body>")
    return flow.namespace, flow.id


@router.post("/flows", openapi_extra=YAML_BODY)
async def kestra_create_flow(request: Request, caller: TenantCaller) -> JSONResponse:
    """Kestra: create a flow from YAML; 422 if it exists already (update it with PUT)."""
    caller.require(PutFlowRequest.required_role, PutFlowRequest.action)
    source = await flow_source(request)
    namespace, flow_id = parsed_flow(source)
    try:
        await call(request, caller, GetFlowRequest(namespace=namespace, flow_id=flow_id))
    except NotFound:
        pass
    else:
        message = f"flow {namespace}.{flow_id} already exists"
        raise InvalidInput(message, [FieldError(("body", "id"), message)])
    stored = await call(
        request, caller, PutFlowRequest(namespace=namespace, flow_id=flow_id, source=source)
    )
    return JSONResponse(kestra_flow(stored.record))


@router.put("/flows/{namespace}/{id}", openapi_extra=YAML_BODY)
async def kestra_update_flow(
    request: Request, namespace: str, id: str, caller: TenantCaller
) -> JSONResponse:
    """Kestra: store a new revision of an existing flow."""
    caller.require(PutFlowRequest.required_role, PutFlowRequest.action)
    source = await flow_source(request)
    await call(request, caller, GetFlowRequest(namespace=namespace, flow_id=id))
    stored = await call(
        request, caller, PutFlowRequest(namespace=namespace, flow_id=id, source=source)
    )
    return JSONResponse(kestra_flow(stored.record))


@router.post("/flows/validate", openapi_extra=YAML_BODY)
async def kestra_validate_flows(request: Request, caller: TenantCaller) -> JSONResponse:
    """Kestra: check each flow of a (``---``-separated) YAML text; one verdict each."""
    verdicts = []
    for index, source in enumerate(flow_sources(await flow_source(request))):
        verdict: dict[str, Any] = {"index": index}
        try:
            verdict["namespace"], verdict["flow"] = parsed_flow(source)
        except FlowError as error:
            verdict["constraints"] = error.message
        verdicts.append(verdict)
    return JSONResponse(verdicts)


@router.get("/flows/search")
async def kestra_search_flows(
    request: Request,
    caller: TenantCaller,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    size: Annotated[int, Query(ge=1, le=500)] = 10,
    namespace: str | None = None,
    q: str | None = None,
) -> JSONResponse:
    """Kestra: the latest revision of the organization's flows, a page at a time."""
    wanted_namespace = namespace or request.query_params.get("filters[namespace][EQUALS]")
    prefix = request.query_params.get("filters[namespace][PREFIX]") or request.query_params.get(
        "filters[namespace][STARTS_WITH]"
    )
    text = q or request.query_params.get("filters[q][EQUALS]")
    summaries = [
        summary
        for summary in await call(request, caller, ListFlowsRequest())
        if (wanted_namespace is None or summary.namespace == wanted_namespace)
        and (prefix is None or summary.namespace.startswith(prefix))
        and (not text or text.lower() in f"{summary.namespace}.{summary.id}".lower())
    ]
    chosen = summaries[(page - 1) * size : page * size]
    results = []
    for summary in chosen:
        record = await call(
            request, caller, GetFlowRequest(namespace=summary.namespace, flow_id=summary.id)
        )
        results.append(kestra_flow(record))
    return JSONResponse({"results": results, "total": len(summaries)})


@router.get("/flows/{namespace}/{id}")
async def kestra_get_flow(
    request: Request,
    namespace: str,
    id: str,
    caller: TenantCaller,
    revision: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> JSONResponse:
    """Kestra: a flow (the latest revision, or ``revision``), with its source."""
    record = await call(
        request, caller, GetFlowRequest(namespace=namespace, flow_id=id, revision=revision)
    )
    return JSONResponse(kestra_flow(record))


@router.delete("/flows/{namespace}/{id}", status_code=204, response_class=Response)
async def kestra_delete_flow(
    request: Request, namespace: str, id: str, caller: TenantCaller
) -> Response:
    """Kestra: delete a flow (executions that used it keep their revision)."""
    await call(request, caller, DeleteFlowRequest(namespace=namespace, flow_id=id))
    return Response(status_code=204)


# -- bulk (before the routes with an execution id, so "pause" is never read as one) ----


async def bulk(
    request: Request,
    caller: Principal,
    idempotency_key: str | None,
    op: str,
    word: str,
    *,
    ids: list[str] | None = None,
    selected: ExecutionFilter | None = None,
) -> JSONResponse:
    """Kestra's bulk: all or nothing. Every execution is checked first (the same admission
    as the real command); if one is unknown or in a state the operation does not apply to,
    the whole request is a 400 listing them and nothing changes; else ``{count}``.
    Check and commands are one operation, so a retry with the same Idempotency-Key
    gets the first answer whatever has happened since.
    """
    reason = KILL_REASON if op == "terminate" else None
    if selected is not None and not selected.matches_nothing:
        target: dict[str, Any] = {
            "by_filter": True,
            "states": selected.states,
            "namespace": selected.namespace,
            "flow_id": selected.flow_id,
            "labels": selected.labels,
        }
    else:
        target = {"ids": tuple(ids or ())}
    command = BulkRequest(op=op, reason=reason, all_or_nothing=True, **target)
    done, replayed = await call_replayed(request, caller, command, idempotency_key)
    if done.dry_run:  # refused as a whole: the check's answer
        invalids = [
            {
                "message": "execution not found" if item.status == 404 else item.message,
                "invalidValue": item.execution_id,
                "path": "execution",
            }
            for item in done.results
            if item.status >= 300
        ]
        body = BulkInvalid(message=f"invalid bulk {word}", invalids=invalids)
        return JSONResponse(body.model_dump(), status_code=400, headers=replayed)
    count = sum(1 for item in done.results if item.status < 300)
    return JSONResponse({"count": count}, headers=replayed)


ExecutionIds = Annotated[list[str], Body(max_length=1000)]
BULK_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": BulkInvalid, "description": "Some execution cannot: nothing was done."}
}


def filters_of(request: Request) -> ExecutionFilter:
    return parse_execution_filters(request.query_params.multi_items())


@router.post("/executions/pause/by-ids", responses=BULK_RESPONSES)
async def kestra_pause_by_ids(
    request: Request,
    ids: ExecutionIds,
    caller: TenantCaller,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Kestra: pause these running executions, all or none."""
    return await bulk(request, caller, idempotency_key, "pause", "pause", ids=ids)


@router.post("/executions/pause/by-query", responses=BULK_RESPONSES)
async def kestra_pause_by_query(
    request: Request, caller: TenantCaller, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    """Kestra: pause the executions the filters match, all or none."""
    selected = filters_of(request)
    return await bulk(request, caller, idempotency_key, "pause", "pause", selected=selected)


@router.post("/executions/resume/by-ids", responses=BULK_RESPONSES)
async def kestra_resume_by_ids(
    request: Request,
    ids: ExecutionIds,
    caller: TenantCaller,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Kestra: resume these paused executions (without inputs), all or none."""
    return await bulk(request, caller, idempotency_key, "resume", "resume", ids=ids)


@router.post("/executions/resume/by-query", responses=BULK_RESPONSES)
async def kestra_resume_by_query(
    request: Request, caller: TenantCaller, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    """Kestra: resume the paused executions the filters match, all or none."""
    selected = filters_of(request)
    return await bulk(request, caller, idempotency_key, "resume", "resume", selected=selected)


@router.delete("/executions/kill/by-ids", responses=BULK_RESPONSES)
async def kestra_kill_by_ids(
    request: Request,
    ids: ExecutionIds,
    caller: TenantCaller,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Kestra: kill (terminate) these executions, all or none."""
    return await bulk(request, caller, idempotency_key, "terminate", "kill", ids=ids)


@router.delete("/executions/kill/by-query", responses=BULK_RESPONSES)
async def kestra_kill_by_query(
    request: Request, caller: TenantCaller, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    """Kestra: kill (terminate) the executions the filters match, all or none."""
    selected = filters_of(request)
    return await bulk(request, caller, idempotency_key, "terminate", "kill", selected=selected)


# -- executions -----------------------------------------------------------------------


def summary_view(summary: ExecutionSummary) -> ExecutionView:
    """An execution of a search result: what the list knows, without task runs or inputs."""
    return ExecutionView(
        id=summary.id,
        namespace=summary.namespace,
        flow_id=summary.flow_id,
        flow_revision=summary.flow_revision,
        state=summary.state,
        inputs={},
        labels=summary.labels,
        created_at=summary.created_at,
        started_at=summary.started_at,
        ended_at=summary.ended_at,
    )


@router.get("/executions/search")
async def kestra_search_executions(
    request: Request,
    caller: TenantCaller,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    size: Annotated[int, Query(ge=1, le=500)] = 10,
) -> JSONResponse:
    """Kestra: executions matching Kestra's filters, newest first: ``{results, total}``.

    Results carry no task runs (read one execution for those); ``total`` counts
    up to 10,000 matches.
    """
    selected = filters_of(request)
    found: list[ExecutionSummary] = []
    cursor: str | None = None
    while not selected.matches_nothing and len(found) < SEARCH_COUNT_LIMIT:
        listing = ListExecutionsRequest(
            states=selected.states,
            namespace=selected.namespace,
            flow_id=selected.flow_id,
            labels=selected.labels,
            limit=500,
            cursor=cursor,
        )
        result = await call(request, caller, listing)
        found.extend(result.items)
        cursor = result.next_cursor
        if cursor is None:
            break
    chosen = found[(page - 1) * size : page * size]
    results = [kestra_execution(summary_view(summary)) for summary in chosen]
    return JSONResponse({"results": results, "total": len(found)})


@router.post("/executions/{namespace}/{id}", openapi_extra=FORM_BODY)
async def kestra_create_execution(
    request: Request,
    namespace: str,
    id: str,
    caller: TenantCaller,
    labels: Annotated[list[str], Query(description="key:value")] = [],  # noqa: B006
    revision: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Kestra: start an execution; inputs are form fields, typed by the flow's inputs.

    A file part (a FILE input) is stored first; the input is its ``kestra:///`` URI.
    """
    caller.require(StartRequest.required_role, StartRequest.action)
    fields, files = form_parts(await request.body(), request.headers.get("content-type", ""))
    inputs: dict[str, Any] = dict(fields)
    for name, sent in files.items():
        upload = UploadInputRequest(
            namespace=namespace,
            flow_id=id,
            input_id=name,
            file_name=sent.file_name,
            content=sent.content,
            start_key=idempotency_key,
        )
        inputs[name] = await call(request, caller, upload)
    operation = StartRequest(
        namespace=namespace,
        flow_id=id,
        inputs=inputs,
        labels=parse_labels(labels),
        revision=revision,
    )
    view = await call(request, caller, operation, idempotency_key)
    execution = kestra_execution(view)
    return JSONResponse({**execution, "url": None})


@router.get(
    "/executions/{execution_id}/file",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def kestra_execution_file(
    request: Request, execution_id: str, caller: TenantCaller, path: StorageUri = None
) -> Response:
    """Kestra: a file of an execution, by its ``kestra:///`` URI."""
    return await execution_file(request, caller, execution_id, path)


@router.post("/namespaces/{namespace}/files", openapi_extra=FILE_BODY)
async def kestra_put_namespace_file(
    request: Request, namespace: str, caller: TenantCaller, path: FilePath = None
) -> JSONResponse:
    """Kestra: store a namespace file (the multipart part ``fileContent``)."""
    uri = await store_namespace_file(request, caller, namespace, path)
    return JSONResponse({"uri": uri})


@router.get("/executions/{execution_id}")
async def kestra_get_execution(
    request: Request, execution_id: str, caller: TenantCaller
) -> JSONResponse:
    """Kestra: one execution, with its task runs, outputs and state histories."""
    return JSONResponse(await snapshot(request, caller, execution_id))


async def pause(
    request: Request, caller: Principal, execution_id: str, idempotency_key: str | None
) -> JSONResponse:
    await call(request, caller, PauseRequest(execution_id=execution_id), idempotency_key)
    return JSONResponse(await snapshot(request, caller, execution_id))


async def resume(
    request: Request, caller: Principal, execution_id: str, idempotency_key: str | None
) -> JSONResponse:
    inputs = await inputs_for(request, caller, ResumeRequest)
    command = ResumeRequest(execution_id=execution_id, inputs=dict(inputs))
    await call(request, caller, command, idempotency_key)
    return JSONResponse(await snapshot(request, caller, execution_id))


async def validate_resume(request: Request, caller: Principal, execution_id: str) -> JSONResponse:
    view = await call(request, caller, GetExecutionRequest(execution_id=execution_id))
    inputs = dict(await inputs_for(request, caller, ValidateResumeRequest))
    values = await call(
        request, caller, ValidateResumeRequest(execution_id=execution_id, inputs=inputs)
    )
    checked = [{"id": key, "value": value, "errors": []} for key, value in values.items()]
    return JSONResponse({"id": view.flow_id, "namespace": view.namespace, "inputs": checked})


async def kill(
    request: Request, caller: Principal, execution_id: str, idempotency_key: str | None
) -> JSONResponse:
    command = TerminateRequest(execution_id=execution_id, reason=KILL_REASON)
    await call(request, caller, command, idempotency_key)
    return JSONResponse(await snapshot(request, caller, execution_id), status_code=202)


async def follow(request: Request, caller: Principal, execution_id: str) -> Response:
    if not wants_stream(request):
        return JSONResponse(await snapshot(request, caller, execution_id))
    engine = await call(request, caller, OpenStreamRequest(execution_id=execution_id))
    frames = snapshots(engine, execution_id, request)
    return StreamingResponse(frames, media_type="text/event-stream", headers=SSE_HEADERS)


def fingerprint(execution: dict[str, Any]) -> Any:
    """What a change is: the states and outputs, not a running clock's durations."""
    runs = [
        (run["id"], run["state"]["current"], run["outputs"]) for run in execution["taskRunList"]
    ]
    return execution["state"]["histories"], runs, execution["outputs"]


def snapshot_frame(kind: str, execution: dict[str, Any]) -> str:
    """A frame as Kestra writes it: the kind is the SSE ``id``, with no event name, so
    that an ``EventSource``'s plain message handler sees every frame."""
    return f"id: {kind}\ndata: {json.dumps(execution)}\n\n"


async def snapshots(engine: Engine, execution_id: str, request: Request) -> AsyncIterator[str]:
    """Kestra's follow: a first frame with only the id (``start``), the execution now
    and again after each change (``progress``), and once it has ended (``end``), then
    the stream closes. An execution already ended gets ``start`` and ``end`` only.

    Rides on the execution's event stream: a burst of its events is one snapshot.
    """
    yield snapshot_frame("start", {"id": execution_id})
    last = await engine_snapshot(engine, execution_id)
    if last["state"]["current"] not in KESTRA_ENDED:
        yield snapshot_frame("progress", last)
        async for chunk in execution_events(engine, execution_id, after=0, timing=timing(request)):
            if all(line.startswith(b":") for line in chunk.splitlines() if line):
                yield comment("keep-alive")
                continue
            current = await engine_snapshot(engine, execution_id)
            if current["state"]["current"] in KESTRA_ENDED:
                continue  # the end frame below says it
            if fingerprint(current) != fingerprint(last):
                yield snapshot_frame("progress", current)
                last = current
    yield snapshot_frame("end", await engine_snapshot(engine, execution_id))


@router.post("/executions/{execution_id}/actions/pause")
async def kestra_pause(
    request: Request,
    execution_id: str,
    caller: TenantCaller,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Kestra: pause a running execution at its next checkpoint."""
    return await pause(request, caller, execution_id, idempotency_key)


@router.post("/executions/{execution_id}/actions/resume", openapi_extra=FORM_BODY)
async def kestra_resume(
    request: Request,
    execution_id: str,
    caller: TenantCaller,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Kestra: resume a paused execution; ``onResume`` inputs are form fields, typed."""
    return await resume(request, caller, execution_id, idempotency_key)


async def review(
    request: Request,
    caller: Principal,
    execution_id: str,
    body: KestraReviewBody,
    idempotency_key: str | None,
) -> JSONResponse:
    command = VoteRequest(
        execution_id=execution_id,
        decision=body.decision,
        pause_id=f"p-{body.task_run_id}" if body.task_run_id else None,
        comment=body.comment,
        inputs=body.inputs,
    )
    await call(request, caller, command, idempotency_key)
    return JSONResponse(await snapshot(request, caller, execution_id))


@router.post("/executions/{execution_id}/actions/review")
async def kestra_review(
    request: Request,
    execution_id: str,
    caller: TenantCaller,
    body: KestraReviewBody,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Kestra: decide an Approval task's request (``decision`` APPROVED or DENIED, the
    task run when several wait, a comment, the review form's inputs)."""
    return await review(request, caller, execution_id, body, idempotency_key)


@router.post("/executions/{execution_id}/actions/resume/validate", openapi_extra=FORM_BODY)
async def kestra_validate_resume(
    request: Request, execution_id: str, caller: TenantCaller
) -> JSONResponse:
    """Kestra: check ``onResume`` inputs without resuming: the typed values, or 422."""
    return await validate_resume(request, caller, execution_id)


@router.delete("/executions/{execution_id}/actions/kill", status_code=202)
async def kestra_kill(
    request: Request,
    execution_id: str,
    caller: TenantCaller,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Kestra: kill an execution: pausepoint's terminate (in-flight work stops at once)."""
    return await kill(request, caller, execution_id, idempotency_key)


@router.get("/executions/{execution_id}/follow")
async def kestra_follow(request: Request, execution_id: str, caller: TenantCaller) -> Response:
    """Kestra: SSE of the execution's snapshots until it ends (JSON snapshot without
    ``Accept: text/event-stream``)."""
    return await follow(request, caller, execution_id)


# -- webhooks -----------------------------------------------------------------------------

MAX_WEBHOOK_BODY = 1024 * 1024
WEBHOOK_DOC = (
    "Start the flow from its Webhook trigger whose key is {key}; the key is the secret, so "
    "no credentials are needed. A wrong key, an unknown flow or a paused trigger is a 404 and "
    "starts nothing; a signed webhook answers 401 to a missing or wrong signature, and 204 "
    "when its when condition is false (nothing starts). The flow reads the body (JSON, else "
    "text) as trigger.body, the headers as trigger.headers and the query parameters as "
    "trigger.parameters. With wait: true the answer comes when the execution ends (500 if "
    "it failed), and with returnOutputs (outputsAsResponse) its body is the flow's outputs."
)


async def start_from_webhook(
    request: Request, organization: str, namespace: str, flow_id: str, key: str
) -> Response:
    raw = await request.body()
    if len(raw) > MAX_WEBHOOK_BODY:
        raise InvalidInput(
            f"the body is over {MAX_WEBHOOK_BODY} bytes",
            [FieldError(("body",), "too large", "too_large")],
        )
    body: Any = None
    if raw:
        text = raw.decode("utf-8", errors="replace")
        try:
            body = json.loads(text)
        except ValueError:
            body = text
    call = WebhookCall(
        namespace,
        flow_id,
        key,
        body=body,
        raw_body=raw,
        headers=dict(request.headers.items()),
        parameters=dict(request.query_params),
        multipart=media_type(request.headers.get("content-type", "")) == "multipart/form-data",
        idempotency_key=request.headers.get("idempotency-key"),
    )
    answer = await answer_webhook(engine_of(request).as_org(organization), call)
    if answer.execution is None:
        return Response(status_code=answer.status)  # its when condition is false
    if not answer.returns_outputs:
        return JSONResponse(kestra_execution(answer.execution), status_code=answer.status)
    if answer.content_type == "text/plain":
        outputs = answer.outputs
        text = outputs if isinstance(outputs, str) else json.dumps(outputs)
        return PlainTextResponse(text, status_code=answer.status)
    return JSONResponse(answer.outputs, status_code=answer.status)


async def kestra_webhook(
    request: Request, tenant: str, namespace: str, flow_id: str, key: str
) -> Response:
    """Kestra: start an execution from a webhook (``main`` is the default organization)."""
    organization = DEFAULT_ORG if tenant == MAIN_TENANT else tenant
    return await start_from_webhook(request, organization, namespace, flow_id, key)


async def kestra_legacy_webhook(
    request: Request, namespace: str, flow_id: str, key: str
) -> Response:
    """Kestra (untenanted): a webhook of the default organization."""
    return await start_from_webhook(request, DEFAULT_ORG, namespace, flow_id, key)


# Kestra answers GET, POST and PUT on a webhook: one route each, each its own operation.
for _method in ("GET", "POST", "PUT"):
    router.add_api_route(
        "/executions/webhook/{namespace}/{flow_id}/{key}",
        kestra_webhook,
        methods=[_method],
        description=WEBHOOK_DOC,
        operation_id=f"kestra_webhook_{_method.lower()}",
    )
    legacy.add_api_route(
        "/webhook/{namespace}/{flow_id}/{key}",
        kestra_legacy_webhook,
        methods=[_method],
        description=WEBHOOK_DOC,
        operation_id=f"kestra_legacy_webhook_{_method.lower()}",
    )


# -- Kestra's older untenanted paths ----------------------------------------------------


async def kestra_legacy_resume(
    request: Request, execution_id: str, caller: Caller, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    """Kestra (untenanted): resume with form inputs; a JSON body goes to the native route."""
    return await resume(request, caller, execution_id, idempotency_key)


async def kestra_legacy_validate_resume(
    request: Request, execution_id: str, caller: Caller
) -> JSONResponse:
    """Kestra (untenanted): check form inputs of a resume; JSON goes to the native route."""
    return await validate_resume(request, caller, execution_id)


# Only form bodies reach these: the native routes at the same paths keep JSON, and the
# OpenAPI document lists the native ones.
for _path, _endpoint in (
    ("/{execution_id}/resume", kestra_legacy_resume),
    ("/{execution_id}/resume/validate", kestra_legacy_validate_resume),
):
    legacy.add_api_route(
        _path,
        _endpoint,
        methods=["POST"],
        include_in_schema=False,
        route_class_override=KestraFormRoute,
    )


@legacy.delete("/{execution_id}/kill", status_code=202)
async def kestra_legacy_kill(
    request: Request, execution_id: str, caller: Caller, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    """Kestra (untenanted): kill an execution of the caller's organization."""
    return await kill(request, caller, execution_id, idempotency_key)


@legacy.post("/{execution_id}/actions/review")
async def kestra_legacy_review(
    request: Request,
    execution_id: str,
    caller: Caller,
    body: KestraReviewBody,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Kestra (untenanted): decide an Approval task's request."""
    return await review(request, caller, execution_id, body, idempotency_key)


@legacy.get("/{execution_id}/follow")
async def kestra_legacy_follow(request: Request, execution_id: str, caller: Caller) -> Response:
    """Kestra (untenanted): follow an execution of the caller's organization."""
    return await follow(request, caller, execution_id)
