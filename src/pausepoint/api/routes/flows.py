"""Flows: store revisions (YAML or JSON bodies), list, read, delete, validate.

The stored source is always YAML text: a JSON body is converted with
``yaml.safe_dump`` first, so a flow reads the same whichever way it arrived.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from pausepoint.api.deps import Caller, call
from pausepoint.api.schemas import (
    FlowDetail,
    FlowErrors,
    FlowRecordView,
    FlowSummary,
    FlowValidation,
)
from pausepoint.errors import FieldError, FlowError, InvalidInput, PausepointError
from pausepoint.flow import inputs_json_schema, iter_tasks, load_flow
from pausepoint.flow.model import Flow
from pausepoint.flow.parser import MAX_YAML_DEPTH
from pausepoint.service.operations import (
    DeleteFlowRequest,
    GetFlowRequest,
    ListFlowsRequest,
    PutFlowRequest,
)
from pausepoint.service.views import flow_record_view
from pausepoint.tasks.policy import check_flow_functions

router = APIRouter(prefix="/api/v1/flows", tags=["flows"])

YAML_TYPES = ("application/x-yaml", "application/yaml", "text/yaml", "text/x-yaml", "text/plain")

FLOW_BODY = {
    "requestBody": {
        "required": True,
        "description": "The flow as YAML text, or as a JSON object.",
        "content": {
            "application/x-yaml": {
                "schema": {"type": "string"},
                "example": (
                    "id: hello\nnamespace: company.team\ntasks:\n"
                    "  - id: greet\n    type: log\n    message: hello\n"
                ),
            },
            "text/yaml": {"schema": {"type": "string"}},
            "text/plain": {"schema": {"type": "string"}},
            "application/json": {"schema": {"type": "object"}},
        },
    }
}

FLOW_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"model": FlowErrors, "description": "The flow does not validate (each error's line)."}
}

# "source:12 tasks[0].format: problem" or "source:2:1: invalid YAML: …"
_MESSAGE_LINE = re.compile(r"^.*?:(?P<line>\d+)(?::\d+)?:?\s")


async def flow_source(request: Request) -> str:
    """The request body as YAML text; JSON objects are converted, anything else is a 422."""
    raw = await request.body()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json" or content_type.endswith("+json"):
        try:
            document = json.loads(raw or b"null")
        except RecursionError:
            document = _TOO_DEEP
        except ValueError as error:
            raise InvalidInput(
                f"the body is not valid JSON: {error}",
                [FieldError(("body",), f"invalid JSON: {error}", "json_invalid")],
            ) from None
        deep = _too_deep(document)
        if deep is not None:
            message = f"refused: nesting deeper than {MAX_YAML_DEPTH} levels"
            raise InvalidInput(message, [FieldError(("body", *deep), message, "too_deep")])
        if not isinstance(document, dict):
            raise InvalidInput(
                "a JSON flow must be an object",
                [FieldError(("body",), "expected a JSON object", "dict_type")],
            )
        return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    if content_type and content_type not in YAML_TYPES:
        raise InvalidInput(
            f"unsupported Content-Type {content_type!r}: send YAML (application/x-yaml) or JSON",
            [FieldError(("header", "Content-Type"), "use application/x-yaml or application/json")],
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidInput(
            "the flow is not UTF-8 text",
            [FieldError(("body",), f"not UTF-8 (byte {error.start})", "unicode_error")],
        ) from None


_TOO_DEEP = object()  # a JSON body nested deeper than the JSON parser itself goes


def _too_deep(document: Any) -> tuple[str | int, ...] | None:
    """The path to the first value nested deeper than a flow may be, or None.

    Walked without recursion: the point is to refuse what would exhaust it.
    """
    if document is _TOO_DEEP:
        return ()
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(document, ())]
    while stack:
        value, path = stack.pop()
        if len(path) > MAX_YAML_DEPTH:
            return path[: MAX_YAML_DEPTH + 1]
        if isinstance(value, dict):
            stack.extend((item, (*path, str(key))) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((item, (*path, n)) for n, item in enumerate(value))
    return None


def flow_error_response(error: FlowError) -> JSONResponse:
    """Each problem as ``{loc, msg, type, line}``, the line taken from the error's message."""
    lines: list[int | None] = []
    for text in error.message.splitlines():
        match = _MESSAGE_LINE.match(text)
        lines.append(int(match["line"]) if match else None)
    errors = error.errors or [FieldError((), error.message)]
    if len(lines) != len(errors):
        lines = [lines[0] if len(lines) == 1 and len(errors) == 1 else None] * len(errors)
    detail = [
        {"loc": ["body", *e.loc], "msg": e.msg, "type": e.type, "line": line}
        for e, line in zip(errors, lines, strict=True)
    ]
    return JSONResponse({"detail": detail, "message": error.message}, status_code=422)


def parse(source: str, name: str) -> Flow:
    return load_flow(source, source=name)


@router.get("", response_model=list[FlowSummary])
async def list_flows(request: Request, caller: Caller) -> list[FlowSummary]:
    """The latest revision of every flow the caller's organization owns."""
    return await call(request, caller, ListFlowsRequest())


@router.post(
    "/validate", response_model=FlowValidation, responses=FLOW_ERRORS, openapi_extra=FLOW_BODY
)
async def validate_flow(request: Request, caller: Caller) -> Response:
    """Check a flow without storing it: 200, or 422 with each error's field and line."""
    source = await flow_source(request)
    try:
        flow = parse(source, "<body>")
        # What the operator allows a flow to call, checked as storing the flow would.
        check_flow_functions(flow, request.app.state.engine.settings, "<body>")
    except FlowError as error:
        return flow_error_response(error)
    return JSONResponse(FlowValidation(namespace=flow.namespace, id=flow.id).model_dump())


@router.put(
    "/{namespace}/{flow_id}",
    response_model=FlowRecordView,
    responses={201: {"model": FlowRecordView, "description": "A new revision."}, **FLOW_ERRORS},
    openapi_extra=FLOW_BODY,
)
async def put_flow(request: Request, namespace: str, flow_id: str, caller: Caller) -> Response:
    """Store the flow: 201 with a new revision, or 200 when the source is unchanged."""
    source = await flow_source(request)
    operation = PutFlowRequest(namespace=namespace, flow_id=flow_id, source=source)
    try:
        stored = await call(request, caller, operation)
    except FlowError as error:
        return flow_error_response(error)
    return JSONResponse(
        flow_record_view(stored.record).model_dump(mode="json"),
        status_code=201 if stored.created else 200,
    )


@router.get("/{namespace}/{flow_id}", response_model=FlowDetail)
async def get_flow(
    request: Request,
    namespace: str,
    flow_id: str,
    caller: Caller,
    revision: Annotated[
        int | None, Query(ge=1, le=2**31 - 1, description="Default: the latest.")
    ] = None,
) -> FlowDetail:
    """The source of a revision, with its inputs' JSON Schema and its task ids."""
    record = await call(
        request, caller, GetFlowRequest(namespace=namespace, flow_id=flow_id, revision=revision)
    )
    try:
        flow = parse(record.source, f"{namespace}.{flow_id}")
    except PausepointError:
        # Stored revisions validated when written; a newer pausepoint may be stricter.
        flow = None
    view = flow_record_view(record)
    return FlowDetail(
        **view.model_dump(),
        description=flow.description if flow else None,
        labels=flow.labels if flow else {},
        inputs_schema=inputs_json_schema(flow.inputs) if flow else {},
        task_ids=[task.id for _, task in iter_tasks(flow)] if flow else [],
    )


@router.delete("/{namespace}/{flow_id}", status_code=204, response_class=Response)
async def delete_flow(request: Request, namespace: str, flow_id: str, caller: Caller) -> Response:
    """Delete the flow (its revisions stay readable by the executions that used them)."""
    await call(request, caller, DeleteFlowRequest(namespace=namespace, flow_id=flow_id))
    return Response(status_code=204)
