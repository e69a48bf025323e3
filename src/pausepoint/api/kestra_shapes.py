"""Kestra's shapes of pausepoint's executions, flows, errors and search filters.

Plain functions from pausepoint's public views to the JSON Kestra's API answers
with (camelCase, labels as ``[{key, value}]``, a ``state`` with its histories),
so the Kestra routes stay thin and each mapping can be tested on its own.

The state table (docs/compatibility.md, "Kestra") is ``KESTRA_STATES``: Kestra's
kill is pausepoint's terminate (ends in KILLED), its CANCELLED is pausepoint's
cancel; the states Kestra has no word for take the nearest one it has.
"""

from __future__ import annotations

import email.message
import email.parser
import email.policy
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import yaml

from pausepoint.errors import FieldError, InvalidInput, PausepointError
from pausepoint.models import EventView, ExecutionView, TaskRunView
from pausepoint.service.views import FlowRecord
from pausepoint.states import KESTRA_STATES, TERMINAL_STATES

# The Kestra states an execution ends in.
KESTRA_ENDED = frozenset({*(KESTRA_STATES[state] for state in TERMINAL_STATES), "RETRIED"})

# Kestra's State.Type names (kestrapy 2.0.3's StateType): a filter may name any of them.
KESTRA_STATE_NAMES = (
    "CREATED",
    "SUBMITTED",
    "RUNNING",
    "PAUSED",
    "RESTARTED",
    "KILLING",
    "SUCCESS",
    "WARNING",
    "FAILED",
    "KILLED",
    "CANCELLED",
    "QUEUED",
    "RETRYING",
    "RETRIED",
    "SKIPPED",
    "BREAKPOINT",
    "RESUBMITTED",
)
TERMINAL_KESTRA_STATES = frozenset(
    {"SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "RETRIED"}
)

# The state each of the execution's log events moves it to, for its histories.
EVENT_STATES: dict[str, str] = {
    "workflow.started": "RUNNING",
    "workflow.paused": "PAUSED",
    "workflow.resumed": "RUNNING",
    "workflow.cancelling": "CANCELLING",
    "workflow.cancelled": "CANCELLED",
    "workflow.terminated": "TERMINATED",
    "workflow.failed": "FAILED",
    "workflow.timed_out": "TIMED_OUT",
}


def kestra_state_name(state: str) -> str:
    """Kestra's name of a pausepoint execution state (task-run states are Kestra's already)."""
    return KESTRA_STATES.get(state, state)


def pausepoint_states(kestra_state: str) -> tuple[str, ...]:
    """The pausepoint execution states Kestra's ``kestra_state`` stands for (for filters).

    Kestra's QUEUED (waiting for a concurrency slot) is taken as pausepoint's
    QUEUED too; the states pausepoint has no equivalent of match nothing.
    """
    matches = tuple(ours for ours, theirs in KESTRA_STATES.items() if theirs == kestra_state)
    if kestra_state == "QUEUED":
        return ("QUEUED",)
    return matches


# -- dates, states, labels ------------------------------------------------------------


def _parse(at: str | None) -> datetime | None:
    return datetime.fromisoformat(at.replace("Z", "+00:00")) if at else None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _duration(start: datetime, end: datetime) -> str:
    """ISO-8601 duration, as Java's ``Duration.toString`` writes it (``PT1.5S``)."""
    seconds = max((end - start).total_seconds(), 0.0)
    return f"PT{seconds:.3f}".rstrip("0").rstrip(".") + "S"


def kestra_state(current: str, histories: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Kestra's ``State``: the current name, its histories, and duration and dates.

    ``histories`` are (Kestra state, ISO date), oldest first and never empty.
    Both the names Kestra's Jackson writes (``duration``, ``startDate``,
    ``endDate``) and those its published OpenAPI declares (``getDuration``, …)
    are given; the end date is null until the execution ends or pauses.
    """
    start = _parse(histories[0][1]) or datetime.now(UTC)
    ended = current in TERMINAL_KESTRA_STATES or current == "PAUSED"
    last = _parse(histories[-1][1]) or start
    end = last if ended and len(histories) > 1 else (last if ended else datetime.now(UTC))
    end_date = _iso(last) if ended else None
    duration = _duration(start, end)
    return {
        "current": current,
        "histories": [{"state": state, "date": at} for state, at in histories],
        "duration": duration,
        "startDate": _iso(start),
        "endDate": end_date,
        "getDuration": duration,
        "getStartDate": _iso(start),
        "getEndDate": end_date,
    }


def kestra_labels(labels: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"key": key, "value": value} for key, value in labels.items()]


def parse_labels(labels: Iterable[str], where: str = "labels") -> dict[str, str]:
    """Kestra's ``key:value`` labels (a repeated query parameter) as a mapping."""
    parsed: dict[str, str] = {}
    for label in labels:
        key, sep, value = label.partition(":")
        if not sep or not key.strip():
            raise InvalidInput(
                f"label {label!r} must look like key:value",
                [FieldError(("query", where), f"{label!r} must look like key:value")],
            )
        parsed[key.strip()] = value
    return parsed


# -- executions -----------------------------------------------------------------------


def kestra_execution_state(view: ExecutionView) -> str:
    """Kestra's state of an execution: RETRIED for a failed one a new execution retries."""
    return "RETRIED" if view.retried_by is not None else kestra_state_name(view.state)


def execution_histories(view: ExecutionView, events: Iterable[EventView]) -> list[tuple[str, str]]:
    """The execution's Kestra state histories, from its creation and its log's state events.

    Consecutive events that map to the same Kestra state make one entry; the last
    entry is always the current state (its date the end, or now for one not yet
    in the log).
    """
    histories: list[tuple[str, str]] = [("CREATED", view.created_at)]
    for event in events:
        state = EVENT_STATES.get(event.type)
        if event.type == "workflow.completed":
            state = view.state  # COMPLETED or WARNING
        if state is None:
            continue
        name = kestra_state_name(state)
        if name != histories[-1][0]:
            histories.append((name, event.at))
    current = kestra_execution_state(view)
    if histories[-1][0] != current:
        histories.append((current, view.ended_at or _iso(datetime.now(UTC))))
    return histories


def task_run_state(run: TaskRunView) -> dict[str, Any]:
    histories = [("CREATED", run.started_at or run.ended_at or _iso(datetime.now(UTC)))]
    if run.started_at and run.state != "CREATED":
        histories.append(("RUNNING", run.started_at))
    if run.state not in ("CREATED", "RUNNING"):
        histories.append((run.state, run.ended_at or run.started_at or histories[-1][1]))
    return kestra_state(run.state, histories)


def kestra_task_run(run: TaskRunView, view: ExecutionView) -> dict[str, Any]:
    state = task_run_state(run)
    return {
        "id": run.id,
        "executionId": view.id,
        "namespace": view.namespace,
        "flowId": view.flow_id,
        "taskId": run.task_id,
        "parentTaskRunId": run.parent,
        "value": None if run.value is None else str(run.value),
        "attempts": [
            {"state": state, **({"logFile": run.log_file} if run.log_file and last else {})}
            for last in [False] * (max(run.attempt, 1) - 1) + [True]
        ],
        "outputs": run.outputs,
        "state": state,
    }


def kestra_execution(view: ExecutionView, events: Iterable[EventView] = ()) -> dict[str, Any]:
    """Kestra's ``Execution`` of ``view``; ``events`` (its log) give the state histories."""
    histories = execution_histories(view, events)
    return {
        "id": view.id,
        "namespace": view.namespace,
        "flowId": view.flow_id,
        "flowRevision": view.flow_revision,
        "labels": kestra_labels(view.labels),
        "inputs": view.inputs,
        "outputs": view.outputs,
        "taskRunList": [kestra_task_run(run, view) for run in view.task_runs],
        "state": kestra_state(kestra_execution_state(view), histories),
        "parentId": None,
        "originalId": view.original_id or view.id,
        "trigger": None,
        "deleted": False,
        "metadata": {"attemptNumber": 1, "originalCreatedDate": view.created_at},
        "scheduleDate": None,
        "kind": None,
    }


# -- flows ----------------------------------------------------------------------------


def kestra_flow(record: FlowRecord) -> dict[str, Any]:
    """Kestra's ``FlowWithSource``: the stored YAML's own fields, the revision and the source."""
    document = yaml.safe_load(record.source)
    flow: dict[str, Any] = dict(document) if isinstance(document, dict) else {}
    labels = flow.get("labels")
    if isinstance(labels, Mapping):
        flow["labels"] = kestra_labels({str(k): str(v) for k, v in labels.items()})
    return {
        **flow,
        "id": record.flow_id,
        "namespace": record.namespace,
        "revision": record.revision,
        "updated": _iso(datetime.fromtimestamp(record.created_at, UTC)),
        "disabled": False,
        "draft": False,
        "deleted": False,
        "source": record.source,
    }


def flow_sources(text: str) -> list[str]:
    """The flows of a (possibly multi-document, ``---``-separated) YAML text, each as text."""
    parts = re.split(r"(?m)^---[ \t]*$", text)
    return [part for part in parts if part.strip()] or [text]


# -- errors ---------------------------------------------------------------------------

REASONS = {
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Illegal state",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    422: "Invalid entity",
    429: "Too Many Requests",
}


def error_path(loc: Sequence[str | int]) -> str:
    """Kestra's dotted ``path`` of a field: ``("body", "inputs", "x")`` -> ``inputs.x``."""
    parts = [str(part) for part in loc]
    if len(parts) > 1 and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts)


def kestra_error(
    status: int, message: str, href: str, errors: Sequence[FieldError] = ()
) -> dict[str, Any]:
    """Micronaut's ``JsonError`` as Kestra answers: ``{message, _links, _embedded?}``."""
    reason = REASONS.get(status, "Bad Request")
    body: dict[str, Any] = {
        "message": f"{reason}: {message}",
        "_links": {"self": {"href": href, "templated": False}},
    }
    if errors:
        body["_embedded"] = {
            "errors": [{"message": e.msg, "path": error_path(e.loc)} for e in errors]
        }
    return body


def kestra_error_of(error: PausepointError, href: str) -> dict[str, Any]:
    errors = error.errors if isinstance(error, InvalidInput) else []
    return kestra_error(error.http_status, error.message, href, errors or ())


# -- multipart inputs -----------------------------------------------------------------

FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def media_type(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


def form_inputs(body: bytes, content_type: str) -> dict[str, str]:
    """The text fields of a form body, by name: how Kestra's clients send inputs.

    An empty body is no inputs. A part that is a file upload, a body that is not a
    form, or one that does not parse is a 422 naming it (``UnsupportedForm``
    for a body of another media type).
    """
    fields, files = form_parts(body, content_type)
    if files:
        name = next(iter(files))
        raise _bad_form(
            f"input {name!r} is a file upload; files are taken only when an execution starts",
            ("body", "inputs", name),
        )
    return fields


@dataclass(frozen=True)
class FormFile:
    """A file part of a multipart body: its file name and content."""

    file_name: str
    content: bytes = field(repr=False)


def form_parts(body: bytes, content_type: str) -> tuple[dict[str, str], dict[str, FormFile]]:
    """The text fields and the file parts of a form body, each by name."""
    if not body.strip():
        return {}, {}
    kind = media_type(content_type)
    if kind == "application/x-www-form-urlencoded":
        try:
            text = body.decode("utf-8")
            return dict(parse_qsl(text, keep_blank_values=True, strict_parsing=True)), {}
        except (UnicodeDecodeError, ValueError) as error:
            raise _bad_form(f"the form does not parse: {error}") from None
    if kind != "multipart/form-data":
        raise UnsupportedForm(content_type)
    return _multipart_parts(body, content_type)


class UnsupportedForm(InvalidInput):
    """A body that is not a form where Kestra takes one (415)."""

    code = "unsupported_media_type"
    http_status = 415

    def __init__(self, content_type: str) -> None:
        message = f"send the inputs as multipart/form-data, not {content_type or 'no type'!r}"
        super().__init__(message, [FieldError(("header", "Content-Type"), message)])


def _bad_form(message: str, loc: tuple[str | int, ...] = ("body",)) -> InvalidInput:
    return InvalidInput(message, [FieldError(loc, message, "multipart_invalid")])


def _multipart_parts(body: bytes, content_type: str) -> tuple[dict[str, str], dict[str, FormFile]]:
    if "boundary=" not in content_type:
        raise _bad_form("multipart/form-data without a boundary")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    parts = message.get_payload() if message.is_multipart() else None
    if not isinstance(parts, list) or message.defects:
        raise _bad_form("the multipart body does not parse (check its boundary and parts)")
    fields: dict[str, str] = {}
    files: dict[str, FormFile] = {}
    for part in parts:
        if not isinstance(part, email.message.Message):
            raise _bad_form("a multipart part does not parse")
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or not name:
            raise _bad_form("a multipart part has no name")
        payload = part.get_payload(decode=True)
        if part.get_filename() is not None:
            content = payload if isinstance(payload, bytes) else b""
            files[name] = FormFile(str(part.get_filename()), content)
            continue
        try:
            fields[name] = (payload if isinstance(payload, bytes) else b"").decode(
                part.get_content_charset() or "utf-8"
            )
        except (UnicodeDecodeError, LookupError):
            raise _bad_form(f"input {name!r} is not UTF-8 text", ("body", "inputs", name)) from None
    return fields, files


# -- search filters -------------------------------------------------------------------

_FILTER = re.compile(r"^filters\[(?P<field>[^\]]+)\]\[(?P<op>[A-Z_]+)\](?:\[(?P<key>[^\]]+)\])?$")


@dataclass
class ExecutionFilter:
    """The part of Kestra's execution filters pausepoint's list takes; ``states`` empty = all."""

    states: tuple[str, ...] = ()
    namespace: str | None = None
    flow_id: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    matches_nothing: bool = False  # a state filter naming only states pausepoint never has


def parse_execution_filters(params: Iterable[tuple[str, str]]) -> ExecutionFilter:
    """Kestra's ``filters[field][OP]=value`` query (and its deprecated plain parameters).

    Understood: state EQUALS/IN, namespace EQUALS, flowId EQUALS, labels EQUALS
    (``filters[labels][EQUALS][key]=value``). Any other field or operation is a
    422 naming the parameter, rather than a filter silently ignored.
    """
    selected = ExecutionFilter()
    for name, value in params:
        if name in ("page", "size", "sort", "isOnKillCascade"):
            continue
        if name in ("namespace", "flowId", "state", "labels"):
            name = {
                "namespace": "filters[namespace][EQUALS]",
                "flowId": "filters[flowId][EQUALS]",
                "state": "filters[state][IN]",
            }.get(name, name)
            if name == "labels":
                selected.labels.update(parse_labels([value]))
                continue
        match = _FILTER.match(name)
        if match is None:
            raise _bad_filter(name, "not a filter pausepoint understands")
        where, op, key = match["field"], match["op"], match["key"]
        if where == "state" and op in ("EQUALS", "IN"):
            _add_states(selected, name, value)
        elif where == "namespace" and op == "EQUALS" and key is None:
            selected.namespace = value
        elif where == "flowId" and op == "EQUALS" and key is None:
            selected.flow_id = value
        elif where == "labels" and op == "EQUALS" and key is not None:
            selected.labels[key] = value
        else:
            raise _bad_filter(name, f"filter on {where} with {op} is not supported")
    return selected


def _add_states(selected: ExecutionFilter, name: str, value: str) -> None:
    wanted = [part.strip().upper() for part in value.split(",") if part.strip()]
    unknown = [state for state in wanted if state not in KESTRA_STATE_NAMES]
    if unknown or not wanted:
        raise _bad_filter(name, f"unknown state {', '.join(unknown) or '(none)'}")
    ours = tuple(state for kestra in wanted for state in pausepoint_states(kestra))
    if not ours:
        selected.matches_nothing = True
    selected.states = tuple(dict.fromkeys((*selected.states, *ours)))


def _bad_filter(name: str, message: str) -> InvalidInput:
    return InvalidInput(f"{name}: {message}", [FieldError(("query", name), message)])
