"""The ``http`` task: one HTTP request with httpx.

Each call uses its own ``httpx.AsyncClient``: a client is bound to the event
loop that first used it, and the runtime and tests run several loops per
process. Cancelling the task aborts the request and closes its connection.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import httpx

from pausepoint.errors import TaskError
from pausepoint.tasks import spec as read
from pausepoint.tasks.context import LeafContext
from pausepoint.tasks.policy import HostRefused, guarded_client, host_policy

MAX_BODY_BYTES = 10 * 1024 * 1024
"""A response body past this size is cut and ends with TRUNCATED_MARKER."""
TRUNCATED_MARKER = "\n[pausepoint: response body truncated at {limit} bytes]"
# Connect fast or fail; a server may think for a while before it answers.
TIMEOUT = httpx.Timeout(connect=30.0, read=300.0, write=300.0, pool=30.0)
_FORM = "application/x-www-form-urlencoded"


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def _request_arguments(spec: Mapping[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    body = spec.get("body")
    content_type = read.optional_str(spec, "contentType", "http")
    has_content_type = any(name.lower() == "content-type" for name in headers)
    if content_type and not has_content_type:
        headers["Content-Type"] = content_type
    effective_type = next(
        (value for name, value in headers.items() if name.lower() == "content-type"), ""
    )
    if body is None:
        return {}
    if isinstance(body, str):
        return {"content": body.encode()}
    if isinstance(body, Mapping) and effective_type.split(";")[0].strip().lower() == _FORM:
        return {"data": {str(key): str(value) for key, value in body.items()}}
    # dicts, lists and scalars travel as JSON; httpx sets Content-Type unless given.
    return {"json": body}


async def _read_body(response: httpx.Response) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        if size + len(chunk) > MAX_BODY_BYTES:
            chunks.append(chunk[: MAX_BODY_BYTES - size])
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), False


def _one_line(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _transport_reason(exc: httpx.HTTPError) -> str:
    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    # httpx says "All connection attempts failed"; the OS error underneath says why.
    cause: BaseException | None = exc
    seen: set[int] = set()
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.errno:
            return f"{reason} ({os.strerror(cause.errno)})"
        cause = cause.__cause__ or cause.__context__
    return reason


async def run_http(spec: Mapping[str, Any], ctx: LeafContext) -> dict[str, Any]:
    """Send the request, following redirects.

    Outputs ``{"code", "headers" (lower-case names), "body" (parsed JSON for a
    JSON content type, else text), "uri" (after redirects)}``. A 4xx/5xx status
    raises TaskError unless ``allowFailed``; so does a connection failure, and a host
    the operator's ``http_allowed_hosts`` / ``http_refuse_private`` settings refuse.
    """
    uri = read.required_str(spec, "uri", "http")
    method = (read.optional_str(spec, "method", "http") or "GET").upper()
    headers = read.str_map(spec, "headers", "http")
    allow_failed = read.flag(spec, "allowFailed", "http")
    arguments = _request_arguments(spec, headers)
    policy = await host_policy(ctx, "http task")
    try:
        async with (
            guarded_client(policy, follow_redirects=True, timeout=TIMEOUT) as client,
            client.stream(method, uri, headers=headers, **arguments) as response,
        ):
            raw, truncated = await _read_body(response)
    except HostRefused as exc:
        raise TaskError(f"http task: {method} {uri} refused: {exc}") from None
    except httpx.InvalidURL as exc:
        raise TaskError(f"http task: invalid uri {uri!r}: {exc}") from exc
    except httpx.UnsupportedProtocol as exc:
        raise TaskError(f"http task: unsupported uri {uri!r}: use http:// or https://") from exc
    except httpx.HTTPError as exc:
        raise TaskError(f"{method} {uri} failed: {_transport_reason(exc)}") from exc

    content_type = response.headers.get("content-type", "")
    text = raw.decode(response.encoding or "utf-8", errors="replace")
    body: Any = text
    if truncated:
        body = text + TRUNCATED_MARKER.format(limit=MAX_BODY_BYTES)
        ctx.log("WARN", f"response body of {method} {uri} exceeded {MAX_BODY_BYTES} bytes")
    elif _is_json(content_type) and text.strip():
        try:
            body = json.loads(raw)
        except ValueError:
            ctx.log("WARN", f"{method} {uri} answered {content_type} that is not valid JSON")
    if response.status_code >= 400 and not allow_failed:
        raise TaskError(
            f"HTTP {response.status_code} from {method} {response.url}: {_one_line(text, 200)}"
        )
    return {
        "code": response.status_code,
        "headers": dict(response.headers.items()),
        "body": body,
        "uri": str(response.url),
    }
