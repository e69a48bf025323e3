"""Every endpoint as a request and a parser, sent alike by both clients; the SSE reader."""

from __future__ import annotations

import functools
import os
import ssl
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote, urlsplit
from urllib.request import getproxies

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from pausepoint.client.errors import ConnectionFailed, UnexpectedStatus, unreachable
from pausepoint.client.tokens import CallbackOutcome, MintedCallback, MintedLink
from pausepoint.errors import FieldError, FlowError, InvalidInput
from pausepoint.models import (
    ApprovalPage,
    CommandView,
    ControlResult,
    EventView,
    ExecutionView,
    StateView,
    TriggerView,
)
from pausepoint.states import TERMINAL_STATES as TERMINAL_STATES
from pausepoint.wire import (
    BulkReply,
    EventPage,
    ExecutionPage,
    FlowDetail,
    FlowRecordView,
    FlowSummary,
    FlowValidation,
    Health,
    SecretNames,
    TerminateReply,
    ValidatedInputs,
)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

API = "/api/v1"
CALLBACK_PATH = f"{API}/callbacks/"
USER_AGENT = "pausepoint-client/0.1.0"
RECONNECT_DELAY = 0.1  # doubled after each failed reconnect, up to MAX_RECONNECT_DELAY
MAX_RECONNECT_DELAY = 5.0
MAX_RECONNECTS = 8  # consecutive failures without a new event before giving up
EVENTS_PAGE = 1000

BulkOp = Literal["pause", "resume", "cancel", "terminate"]
# What a review decides; the server also takes Kestra's words for them.
ReviewDecision = Literal["approve", "deny", "APPROVED", "DENIED"]
# What a decision link does: vote approve, vote deny, or show the form with both.
LinkDecision = Literal["approve", "deny", "review"]
Until = Callable[[ExecutionView], bool] | str | Collection[str] | None
Params = list[tuple[str, str | int | float | bool | None]]


# Validators of lists, built on first use: a command line that lists neither flows nor
# commands does not pay for building them.
@functools.cache
def _flow_list() -> TypeAdapter[list[FlowSummary]]:
    return TypeAdapter(list[FlowSummary])


@functools.cache
def _command_list() -> TypeAdapter[list[CommandView]]:
    return TypeAdapter(list[CommandView])


@dataclass(frozen=True)
class BulkSelection:
    """Which executions a bulk operation touches, and the operation's own fields."""

    ids: Sequence[str] | None = None
    state: str | Sequence[str] | None = None
    namespace: str | None = None
    flow_id: str | None = None
    labels: Mapping[str, str] | None = None
    reason: str | None = None
    inputs: Mapping[str, Any] | None = None
    pause_id: str | None = None
    dry_run: bool = False

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = _without_none(
            reason=self.reason,
            inputs=dict(self.inputs) if self.inputs is not None else None,
            pause_id=self.pause_id,
            dry_run=self.dry_run or None,
        )
        if self.ids is not None:
            body["ids"] = list(self.ids)
            return body
        body["filter"] = _without_none(
            state=[self.state] if isinstance(self.state, str) else list(self.state or ()),
            namespace=self.namespace,
            flow_id=self.flow_id,
            label=[f"{k}:{v}" for k, v in (self.labels or {}).items()],
        )
        return body


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Params = field(default_factory=list)
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # What a 422 raises: flow endpoints answer with a flow's problems.
    invalid: type[InvalidInput] = InvalidInput
    # Sent without the client's API key or token: the token in the path is the credential,
    # and a callback must not act with (or leak) the rights of whoever holds the client.
    anonymous: bool = False


def _model(model: type[M]) -> Callable[[httpx.Response], M]:
    return lambda response: model.model_validate(response.json())


def _nothing(response: httpx.Response) -> None:
    return None


def _seg(value: str) -> str:
    return quote(value, safe="")


def _execution(execution_id: str, suffix: str = "") -> str:
    return f"{API}/executions/{_seg(execution_id)}{suffix}"


def _idempotent(key: str | None) -> dict[str, str]:
    return {"Idempotency-Key": key} if key is not None else {}


def _without_none(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _minted(model: type[M]) -> Callable[[httpx.Response], M]:
    """A minted link's or token's reply, its ``url`` made absolute: a server without a
    ``public_url`` answers with a path, which is on the server this client called."""

    def parse(response: httpx.Response) -> M:
        body = response.json()
        if isinstance(body, dict) and isinstance(body.get("url"), str):
            body["url"] = str(response.request.url.join(body["url"]))
        return model.model_validate(body)

    return parse


def callback_token(token_or_url: str) -> str:
    """The token of a callback URL (``…/api/v1/callbacks/<token>``), or the token itself.

    Only the token is read from a URL: the call goes to the client's own server,
    which signed it (its public address may not be the one the client uses).
    Raises ``ValueError`` for a URL that is not a callback's.
    """
    text = token_or_url.strip()
    if "/" not in text:
        if not text:
            raise ValueError("the callback token is empty")
        return text
    _, found, rest = urlsplit(text).path.partition(CALLBACK_PATH)
    token = rest.split("/", 1)[0]
    if not found or not token:
        raise ValueError(
            f"{token_or_url!r} is neither a callback token nor a callback URL "
            f"(…{CALLBACK_PATH}<token>)"
        )
    return token


def _trigger_list(response: httpx.Response) -> list[TriggerView]:
    return [TriggerView.model_validate(item) for item in response.json()]


def _flows_list(response: httpx.Response) -> list[FlowSummary]:
    return _flow_list().validate_python(response.json())


def flow_source(source: str | os.PathLike[str]) -> tuple[str, str]:
    """The YAML text of ``source`` (a path is read) and a name for messages."""
    if isinstance(source, str):
        return source, "<flow>"
    path = Path(source)
    try:
        return path.read_text(encoding="utf-8"), path.name
    except (OSError, UnicodeDecodeError) as error:
        raise FlowError(f"{path}: cannot read the flow: {error}") from None


def flow_key(text: str, name: str) -> tuple[str, str]:
    """A flow's ``(namespace, id)``, read from its YAML (the server validates the rest)."""
    import yaml  # only the commands that send a flow need a YAML parser

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark is not None else name
        raise FlowError(f"{where}: invalid YAML: {error}") from None
    if not isinstance(document, dict):
        raise FlowError(f"{name}: a flow is a YAML mapping with `id`, `namespace` and `tasks`")
    missing = [k for k in ("namespace", "id") if not isinstance(document.get(k), str)]
    if missing:
        raise FlowError(
            f"{name}: the flow needs {' and '.join(f'`{k}`' for k in missing)}",
            [FieldError((k,), "field required", "missing") for k in missing],
        )
    return document["namespace"], document["id"]


class Calls:
    """Every endpoint as a request and a parser; both clients send these."""

    @staticmethod
    def health() -> Call[Health]:
        return Call("GET", "/healthz", _model(Health))

    @staticmethod
    def apply_flow(source: str | os.PathLike[str]) -> Call[FlowRecordView]:
        text, name = flow_source(source)
        namespace, flow_id = flow_key(text, name)
        return Call(
            "PUT",
            f"{API}/flows/{_seg(namespace)}/{_seg(flow_id)}",
            _model(FlowRecordView),
            content=text.encode(),
            headers={"Content-Type": "application/x-yaml"},
            invalid=FlowError,
        )

    @staticmethod
    def flows() -> Call[list[FlowSummary]]:
        return Call("GET", f"{API}/flows", _flows_list)

    @staticmethod
    def flow(namespace: str, flow_id: str, revision: int | None) -> Call[FlowDetail]:
        params: Params = [] if revision is None else [("revision", revision)]
        return Call(
            "GET", f"{API}/flows/{_seg(namespace)}/{_seg(flow_id)}", _model(FlowDetail), params
        )

    @staticmethod
    def triggers(namespace: str, flow_id: str) -> Call[list[TriggerView]]:
        path = f"{API}/flows/{_seg(namespace)}/{_seg(flow_id)}/triggers"
        return Call("GET", path, _trigger_list)

    @staticmethod
    def trigger_action(
        namespace: str, flow_id: str, trigger_id: str, action: str, body: dict[str, Any]
    ) -> Call[TriggerView]:
        path = f"{API}/flows/{_seg(namespace)}/{_seg(flow_id)}/triggers/{_seg(trigger_id)}/{action}"
        return Call("POST", path, _model(TriggerView), json=body)

    @staticmethod
    def delete_flow(namespace: str, flow_id: str) -> Call[None]:
        return Call("DELETE", f"{API}/flows/{_seg(namespace)}/{_seg(flow_id)}", _nothing)

    @staticmethod
    def validate_flow(
        source: str | os.PathLike[str], idempotency_key: str | None
    ) -> Call[FlowValidation]:
        text, _ = flow_source(source)
        return Call(
            "POST",
            f"{API}/flows/validate",
            _model(FlowValidation),
            content=text.encode(),
            headers={"Content-Type": "application/x-yaml", **_idempotent(idempotency_key)},
            invalid=FlowError,
        )

    @staticmethod
    def start(
        namespace: str,
        flow_id: str,
        inputs: Mapping[str, Any] | None,
        labels: Mapping[str, str] | None,
        revision: int | None,
        idempotency_key: str | None,
    ) -> Call[ExecutionView]:
        body = _without_none(
            namespace=namespace,
            flow_id=flow_id,
            inputs=dict(inputs or {}),
            labels=dict(labels or {}),
            revision=revision,
        )
        return Call(
            "POST",
            f"{API}/executions",
            _model(ExecutionView),
            json=body,
            headers=_idempotent(idempotency_key),
        )

    @staticmethod
    def list_executions(
        state: str | Sequence[str] | None,
        namespace: str | None,
        flow_id: str | None,
        labels: Mapping[str, str] | None,
        limit: int | None,
        cursor: str | None,
        parent: str | None = None,
        root: str | None = None,
    ) -> Call[ExecutionPage]:
        params: Params = []
        states = [state] if isinstance(state, str) else list(state or ())
        params += [("state", s) for s in states]
        params += [("label", f"{k}:{v}") for k, v in (labels or {}).items()]
        params += [
            (k, v)
            for k, v in (
                ("namespace", namespace),
                ("flow_id", flow_id),
                ("limit", limit),
                ("cursor", cursor),
                ("parent", parent),
                ("root", root),
            )
            if v is not None
        ]
        return Call("GET", f"{API}/executions", _model(ExecutionPage), params)

    @staticmethod
    def execution(execution_id: str) -> Call[ExecutionView]:
        return Call("GET", _execution(execution_id), _model(ExecutionView))

    @staticmethod
    def state(execution_id: str) -> Call[StateView]:
        return Call("GET", _execution(execution_id, "/state"), _model(StateView))

    @staticmethod
    def audit(execution_id: str) -> Call[list[CommandView]]:
        return Call(
            "GET",
            _execution(execution_id, "/audit"),
            lambda r: _command_list().validate_python(r.json()),
        )

    @staticmethod
    def events(execution_id: str, after: int) -> Call[EventPage]:
        return Call(
            "GET",
            _execution(execution_id, "/events"),
            _model(EventPage),
            [("after", after), ("limit", EVENTS_PAGE)],
            headers={"Accept": "application/json"},
        )

    @staticmethod
    def control(
        execution_id: str, op: str, body: dict[str, Any], idempotency_key: str | None
    ) -> Call[ControlResult]:
        return Call(
            "POST",
            _execution(execution_id, f"/{op}"),
            _model(ControlResult),
            json=body,
            headers=_idempotent(idempotency_key),
        )

    @staticmethod
    def terminate(
        execution_id: str, reason: str, idempotency_key: str | None, cascade: bool | None = None
    ) -> Call[TerminateReply]:
        return Call(
            "POST",
            _execution(execution_id, "/terminate"),
            _model(TerminateReply),
            json=_without_none(reason=reason, cascade=cascade),
            headers=_idempotent(idempotency_key),
        )

    @staticmethod
    def validate_resume(
        execution_id: str,
        inputs: Mapping[str, Any] | None,
        pause_id: str | None,
        idempotency_key: str | None,
    ) -> Call[ValidatedInputs]:
        return Call(
            "POST",
            _execution(execution_id, "/resume/validate"),
            _model(ValidatedInputs),
            json=_without_none(inputs=dict(inputs or {}), pause_id=pause_id),
            headers=_idempotent(idempotency_key),
        )

    @staticmethod
    def bulk(op: BulkOp, selection: BulkSelection, idempotency_key: str | None) -> Call[BulkReply]:
        return Call(
            "POST",
            f"{API}/executions/bulk/{_seg(op)}",
            _model(BulkReply),
            json=selection.body(),
            headers=_idempotent(idempotency_key),
        )

    @staticmethod
    def review(
        execution_id: str,
        decision: str,
        comment: str | None,
        inputs: Mapping[str, Any] | None,
        pause_id: str | None,
        idempotency_key: str | None,
    ) -> Call[ControlResult]:
        body = _without_none(
            decision=decision,
            comment=comment,
            inputs=dict(inputs) if inputs is not None else None,
            pause_id=pause_id,
        )
        return Calls.control(execution_id, "review", body, idempotency_key)

    @staticmethod
    def approvals(
        mine: bool,
        namespace: str | None,
        flow_id: str | None,
        labels: Mapping[str, str] | None,
        older_than: str | None,
        limit: int,
    ) -> Call[ApprovalPage]:
        params: Params = [("assigned", "me" if mine else "anyone")]
        params += [("label", f"{k}:{v}") for k, v in (labels or {}).items()]
        params += [
            (k, v)
            for k, v in (
                ("namespace", namespace),
                ("flow_id", flow_id),
                ("older_than", older_than),
                ("limit", limit),
            )
            if v is not None
        ]
        return Call("GET", f"{API}/approvals", _model(ApprovalPage), params)

    @staticmethod
    def decision_link(
        execution_id: str,
        pause_id: str,
        approver: str,
        decision: LinkDecision,
        groups: Sequence[str],
        expires_in: str | None,
    ) -> Call[MintedLink]:
        body = _without_none(
            approver=approver, groups=list(groups), decision=decision, expires_in=expires_in
        )
        path = _execution(execution_id, f"/approvals/{_seg(pause_id)}/links")
        return Call("POST", path, _minted(MintedLink), json=body)

    @staticmethod
    def callback(execution_id: str, task_id: str, expires_in: str | None) -> Call[MintedCallback]:
        body = _without_none(task_id=task_id, expires_in=expires_in)
        return Call(
            "POST", _execution(execution_id, "/callbacks"), _minted(MintedCallback), json=body
        )

    @staticmethod
    def complete_callback(
        token_or_url: str, inputs: Mapping[str, Any] | None
    ) -> Call[CallbackOutcome]:
        return Call(
            "POST",
            CALLBACK_PATH + _seg(callback_token(token_or_url)),
            _model(CallbackOutcome),
            json=dict(inputs or {}),
            anonymous=True,
        )

    @staticmethod
    def callback_heartbeat(token_or_url: str) -> Call[None]:
        path = f"{CALLBACK_PATH}{_seg(callback_token(token_or_url))}/heartbeat"
        return Call("POST", path, _nothing, anonymous=True)

    @staticmethod
    def put_secret(name: str, value: str) -> Call[None]:
        return Call("PUT", f"{API}/secrets/{_seg(name)}", _nothing, json={"value": value})

    @staticmethod
    def secrets() -> Call[list[str]]:
        return Call("GET", f"{API}/secrets", lambda r: SecretNames.model_validate(r.json()).names)

    @staticmethod
    def delete_secret(name: str) -> Call[None]:
        return Call("DELETE", f"{API}/secrets/{_seg(name)}", _nothing)


def pause_body(
    reason: str | None, cascade: bool | None = None, freeze_clock: bool | None = None
) -> dict[str, Any]:
    """The body of a pause or a cancel."""
    return _without_none(reason=reason, cascade=cascade, freeze_clock=freeze_clock)


def resume_body(
    inputs: Mapping[str, Any] | None,
    pause_id: str | None,
    reason: str | None,
    cascade: bool | None = None,
) -> dict[str, Any]:
    return _without_none(
        inputs=dict(inputs or {}), pause_id=pause_id, reason=reason, cascade=cascade
    )


def condition_of(until: Until) -> Callable[[ExecutionView], bool]:
    if until is None:
        return lambda view: view.is_terminal
    if isinstance(until, str):
        state = until.upper()
        return lambda view: view.state == state
    if callable(until):
        return until
    states = {s.upper() for s in until}
    return lambda view: view.state in states


# -- the event stream -------------------------------------------------------------------


class EventStream:
    """Server-sent events of one execution, across reconnects.

    Tracks the last sequence number seen (sent back as ``Last-Event-ID``),
    drops anything at or before it, and counts reconnects that brought nothing.
    """

    def __init__(self, base_url: httpx.URL, execution_id: str, after: int) -> None:
        self.base_url = base_url
        self.execution_id = execution_id
        self.path = _execution(execution_id, "/events")
        self.last_seq = after
        self.failures = 0
        self.delay = RECONNECT_DELAY
        self.progressed = False
        self.connected = False
        self._data: list[str] = []

    def headers(self) -> dict[str, str]:
        self.progressed = False
        self._data = []
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.last_seq > 0:
            headers["Last-Event-ID"] = str(self.last_seq)
        return headers

    def check(self, response: httpx.Response) -> None:
        kind = response.headers.get("content-type", "")
        if not kind.startswith("text/event-stream"):
            raise UnexpectedStatus(
                f"expected an event stream from {self.path}, got {kind or 'no content type'}",
                response.status_code,
            )
        self.connected = True

    def feed(self, line: str) -> EventView | None:
        """One line of the stream; the event it completes, if any (never a repeat)."""
        if line == "":
            data, self._data = self._data, []
            return self._dispatch("\n".join(data)) if data else None
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "retry" and value.isdigit():
            self.delay = max(int(value) / 1000, 0.01)
        return None

    def _dispatch(self, data: str) -> EventView | None:
        try:
            event = EventView.model_validate_json(data)
        except ValidationError:
            return None
        if event.seq <= self.last_seq:
            return None
        self.last_seq = event.seq
        self.failures = 0
        self.progressed = True
        return event

    def dropped(self, error: Exception | None) -> float:
        """Count a failed connection; the delay before the next, or raise if hopeless."""
        if self.progressed:
            return 0.0
        self.failures += 1
        # Reconnect only to a server that answered once: a wrong URL fails at once.
        if self.failures > MAX_RECONNECTS or not self.connected:
            if isinstance(error, httpx.TransportError):
                raise unreachable(self.base_url, error) from error
            raise ConnectionFailed(
                f"the event stream of execution {self.execution_id} keeps ending "
                f"before its terminal event (after event {self.last_seq})"
            )
        return min(self.delay * 2.0 ** (self.failures - 1), MAX_RECONNECT_DELAY)


CREDENTIAL_HEADERS = ("X-API-Key", "Authorization")


def without_credentials(request: httpx.Request) -> httpx.Request:
    """``request`` without the client's API key or bearer token (an ``anonymous`` call)."""
    for name in CREDENTIAL_HEADERS:
        request.headers.pop(name, None)
    return request


def auth_headers(api_key: str | None, token: str | None) -> dict[str, str]:
    if api_key is not None and token is not None:
        raise ValueError("pass api_key or token, not both")
    headers = {"User-Agent": USER_AGENT}
    if api_key is not None:
        headers["X-API-Key"] = api_key
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def tls_verification(base_url: str) -> ssl.SSLContext | bool:
    """What the client's ``verify`` is: httpx's default (``True``) unless nothing it
    connects to can use TLS.

    httpx loads its certificate bundle when a client is made, even for a plain
    ``http://`` server: about 30 ms, a tenth of a ``pausepoint --url http://…``
    command. A client sends only paths relative to an ``http://`` base URL and
    follows no redirects, so without a proxy from the environment (which may be
    an ``https://`` one) it never opens a TLS connection. It then gets a context
    that trusts no certificate: should one ever be opened, it fails rather than
    going unverified.
    """
    if base_url.startswith("https://") or getproxies():
        return True
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def check_url(base_url: str) -> str:
    if not base_url.startswith(("http://", "https://")):
        raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
    return base_url.rstrip("/")
