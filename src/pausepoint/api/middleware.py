"""Request ids and the body-size limit, as plain ASGI (no per-request task group)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]


class RequestLimits:
    """Give every request an id (``X-Request-ID``, echoed) and refuse bodies over the limit."""

    def __init__(
        self,
        app: Any,
        *,
        max_body_bytes: int,
        after: Callable[[Scope], Awaitable[None]] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.after = after  # runs once the response is done, whatever happened

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        request_id = headers.get(b"x-request-id", b"").decode("latin-1")[:64]
        request_id = request_id or secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = request_id
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
        length = headers.get(b"content-length")
        limit = self.max_body_bytes
        if length is not None and (not length.isdigit() or int(length) > limit):
            await self._reply(
                send,
                413,
                {
                    "detail": f"request body too large: the limit is {limit} bytes",
                    "code": "body_too_large",
                },
                request_id,
            )
            return
        received = 0

        async def limited_receive() -> Any:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_id)
        except BodyTooLarge:
            await self._reply(
                send,
                413,
                {
                    "detail": f"request body too large: the limit is {limit} bytes",
                    "code": "body_too_large",
                },
                request_id,
            )
        finally:
            if self.after is not None:
                await self.after(scope)

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


class BodyTooLarge(Exception):
    """A streamed (chunked) body went past the limit."""


def _needs_credentials(path: str) -> bool:
    # The seed-compatible routes (Shannon's /api/v1/tasks, Syntropic137's /executions)
    # answer in their seeds' error shapes, so they authenticate in their handlers.
    return path.startswith("/api/") and not path.startswith("/api/v1/tasks/")
