"""Request ids, trace context and the limits every request passes, as plain ASGI.

No per-request task group. Every request gets an id (``X-Request-ID``, echoed)
and, when it names one in valid ``traceparent``/``tracestate`` headers, its W3C
trace context (``scope["state"]["trace_context"]``; an invalid one is ignored).

Refused here, before routing, each with a JSON error: request headers over
:data:`MAX_HEADER_BYTES` in total (431), a path or query string that is not
UTF-8 once percent-decoded (422, naming it), a body over the configured size
(413, also when it arrives chunked without a Content-Length).
"""

from __future__ import annotations

import json
import random
import re
from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes

from pausepoint.tracecontext import TraceContext, parse_trace_context

Scope = dict[str, Any]

# Far above what browsers, API keys and JWTs need; the server has already read them,
# but nothing past here has to look at more.
MAX_HEADER_BYTES = 64 * 1024
# A caller's X-Request-ID is echoed only if it is a plain token: it lands in a response
# header and in the audit, so anything else is replaced by an id of our own.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=\-]{1,64}")


class RequestLimits:
    """Give every request an id (``X-Request-ID``, echoed) and refuse what is over the limits."""

    def __init__(
        self,
        app: Any,
        *,
        max_body_bytes: int,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_headers = scope.get("headers") or ()
        headers = dict(raw_headers)
        given = headers.get(b"x-request-id", b"").decode("latin-1")[:64]
        # An id, not a secret: no system call per request for it.
        request_id = given if _REQUEST_ID.fullmatch(given) else f"{random.getrandbits(64):016x}"
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["trace_context"] = _trace_context(raw_headers)
        header_bytes = sum(len(name) + len(value) + 4 for name, value in raw_headers)
        if header_bytes > MAX_HEADER_BYTES:
            await self._reply(
                send,
                431,
                {
                    "detail": f"request headers too large: {header_bytes} bytes, "
                    f"the limit is {MAX_HEADER_BYTES}",
                    "code": "headers_too_large",
                },
                request_id,
            )
            return
        undecodable = _undecodable_url_part(scope)
        if undecodable is not None:
            await self._reply(
                send,
                422,
                {
                    "detail": [
                        {
                            "loc": list(undecodable),
                            "msg": "not valid UTF-8 once percent-decoded",
                            "type": "unicode_error",
                        }
                    ]
                },
                request_id,
            )
            return
        if _needs_credentials(scope["path"]) and not (
            headers.get(b"x-api-key") or headers.get(b"authorization")
        ):
            # Before the body is read: an anonymous caller learns nothing from its parsing.
            await self._reply(
                send,
                401,
                {
                    "detail": "authentication required: send an API key or a bearer token",
                    "code": "unauthorized",
                },
                request_id,
                extra=[(b"www-authenticate", b"Bearer")],
            )
            return
        limit = self.max_body_bytes
        body_too_large = {
            "detail": f"request body too large: the limit is {limit} bytes",
            "code": "body_too_large",
        }
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await self._reply(send, 413, body_too_large, request_id)
            return
        received = 0
        overflowed = False
        replied = False

        async def limited_receive() -> Any:
            nonlocal received, overflowed
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    overflowed = True
                    raise BodyTooLarge
            return message

        async def send_with_id(message: Any) -> None:
            nonlocal replied
            if overflowed:
                # The app answered a body it could not read in full (FastAPI turns any
                # error while reading into a 400): whatever it said, the answer is 413.
                if message["type"] == "http.response.start" and not replied:
                    replied = True
                    await self._reply(send, 413, body_too_large, request_id)
                return
            if message["type"] == "http.response.start":
                replied = True
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_id)
        except BodyTooLarge:
            if not replied:
                await self._reply(send, 413, body_too_large, request_id)

    @staticmethod
    async def _reply(
        send: Any,
        status: int,
        body: dict[str, Any],
        request_id: str,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        payload = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"x-request-id", request_id.encode("latin-1")),
                    *(extra or []),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def _undecodable_url_part(scope: Scope) -> tuple[str, ...] | None:
    """Where the URL is not UTF-8 once percent-decoded: ``("path",)`` or ``("query", name)``.

    Servers decode such bytes to U+FFFD, so a route would quietly see another
    value than the one sent (and look it up, or store it).
    """
    raw_path = scope.get("raw_path")
    if isinstance(raw_path, bytes | bytearray):
        try:
            unquote_to_bytes(bytes(raw_path)).decode("utf-8")
        except UnicodeDecodeError:
            return ("path",)
    query: bytes = scope.get("query_string") or b""
    if query:
        try:
            query.decode("ascii")
        except UnicodeDecodeError:
            return ("query",)
        for name, value in parse_qsl(
            query.decode("ascii"), keep_blank_values=True, errors="surrogateescape"
        ):
            for text in (name, value):
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError:
                    shown = name.encode("utf-8", "replace").decode("utf-8")
                    return ("query", shown)
    return None


def _trace_context(raw_headers: Any) -> TraceContext | None:
    """The request's W3C trace context; ``None`` without one (or with one that does not parse)."""
    parents: list[str] = []
    states: list[str] = []
    for name, value in raw_headers:
        if name == b"traceparent":
            parents.append(value.decode("latin-1"))
        elif name == b"tracestate":
            states.append(value.decode("latin-1"))
    return parse_trace_context(parents, states) if parents else None


class BodyTooLarge(Exception):
    """A streamed (chunked) body went past the limit."""


# Kestra's webhooks, /api/v1/executions/webhook/… and /api/v1/{tenant}/executions/webhook/…:
# public, their key is the secret.
_WEBHOOK = re.compile(r"^/api/v1/(?:[^/]+/)?executions/webhook/")


def _needs_credentials(path: str) -> bool:
    # The seed-compatible routes (Shannon's /api/v1/tasks, Syntropic137's /executions)
    # answer in their seeds' error shapes, so they authenticate in their handlers.
    # Callback tokens (/api/v1/callbacks/{token}) are their own credential.
    return (
        path.startswith("/api/")
        and not path.startswith("/api/v1/tasks/")
        and not path.startswith("/api/v1/callbacks/")
        and _WEBHOOK.match(path) is None
    )
