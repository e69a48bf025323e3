"""Errors a client raises: one class per error status, mapped onto ``pausepoint.errors``."""

from __future__ import annotations

from typing import Any

import httpx

from pausepoint.errors import (
    Conflict,
    FieldError,
    FlowError,
    Forbidden,
    InputValidationError,
    InvalidInput,
    NotFound,
    PausepointError,
    TemplateError,
    Unauthorized,
)


class PayloadTooLarge(PausepointError):
    """The request body is larger than the server accepts (HTTP 413)."""

    code = "body_too_large"
    http_status = 413


class Expired(PausepointError):
    """What was asked for has expired: a decision link or a callback token (HTTP 410)."""

    code = "expired"
    http_status = 410


class ServerError(PausepointError):
    """The server failed (HTTP 5xx); ``status_code`` is the status it sent."""

    code = "server_error"

    def __init__(self, message: str, status_code: int = 500) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.http_status = status_code


class UnexpectedStatus(PausepointError):
    """An error status the API does not document (a proxy's 400, 405, 429, …)."""

    code = "unexpected_status"

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.http_status = status_code


class ConnectionFailed(PausepointError):
    """The server could not be reached, or stopped answering."""

    code = "connection_failed"
    http_status = 503


_BY_STATUS: dict[int, type[PausepointError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Expired,
    413: PayloadTooLarge,
}
_INVALID_BY_CODE: dict[str, type[InvalidInput]] = {
    "invalid_flow": FlowError,
    "invalid_inputs": InputValidationError,
}


def error_from(
    response: httpx.Response, invalid: type[InvalidInput] = InvalidInput
) -> PausepointError:
    """The exception for an error response; the message is the body's ``detail``.

    A 422 raises ``invalid`` (a flow endpoint passes :class:`FlowError`) unless
    the body's ``code`` names a more precise class.
    """
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    code = body.get("code") if isinstance(body, dict) else None
    if status == 422:
        fields = _field_errors(detail)
        message = body.get("message") if isinstance(body, dict) else None
        if not isinstance(message, str) or not message:
            if isinstance(detail, str) and detail:
                message = detail
            else:
                message = "invalid input: " + "; ".join(str(f) for f in fields) if fields else ""
        message = message or _fallback_message(response)
        if code == "template_error":
            return TemplateError(message)
        if isinstance(code, str):
            invalid = _INVALID_BY_CODE.get(code, invalid)
        return invalid(message, fields)
    message = detail if isinstance(detail, str) and detail else _fallback_message(response)
    if status in _BY_STATUS:
        return _BY_STATUS[status](message)
    if status >= 500:
        return ServerError(message, status)
    return UnexpectedStatus(message, status)


def _field_errors(detail: Any) -> list[FieldError]:
    if not isinstance(detail, list):
        return []
    fields = []
    for item in detail:
        if not isinstance(item, dict):
            continue
        loc = item.get("loc") or ()
        fields.append(
            FieldError(
                tuple(p if isinstance(p, int) else str(p) for p in loc),
                str(item.get("msg", "")),
                str(item.get("type", "value_error")),
            )
        )
    return fields


def _fallback_message(response: httpx.Response) -> str:
    text = response.text.strip().replace("\n", " ")[:200]
    where = f"{response.request.method} {response.request.url.path}"
    return f"HTTP {response.status_code} {response.reason_phrase} from {where}" + (
        f": {text}" if text else ""
    )


def unreachable(base_url: httpx.URL, error: httpx.TransportError) -> ConnectionFailed:
    reason = str(error) or type(error).__name__
    if isinstance(error, httpx.TimeoutException):
        return ConnectionFailed(f"no answer from {base_url} in time ({reason})")
    return ConnectionFailed(f"cannot reach the pausepoint server at {base_url}: {reason}")
