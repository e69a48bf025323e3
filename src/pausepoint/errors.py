"""The error hierarchy.

Every error pausepoint raises on purpose derives from :class:`PausepointError`
and carries a stable ``code`` and the HTTP status the API maps it to. Messages
say what happened and, where it helps, what to do next.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FieldError:
    """One problem with one field, in FastAPI's ``{"loc", "msg", "type"}`` shape."""

    loc: tuple[str | int, ...]
    msg: str
    type: str = "value_error"

    def as_dict(self) -> dict[str, Any]:
        return {"loc": list(self.loc), "msg": self.msg, "type": self.type}

    def __str__(self) -> str:
        where = ".".join(str(part) for part in self.loc)
        return f"{where}: {self.msg}" if where else self.msg


class PausepointError(Exception):
    """Root of every error pausepoint raises deliberately."""

    code = "error"
    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class NotFound(PausepointError):
    code = "not_found"
    http_status = 404


class Conflict(PausepointError):
    """The operation is not legal in the current state (HTTP 409)."""

    code = "conflict"
    http_status = 409


class InvalidInput(PausepointError):
    """Input that does not validate; ``errors`` name each field (HTTP 422)."""

    code = "invalid_input"
    http_status = 422

    def __init__(self, message: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class FlowError(InvalidInput):
    """A flow definition that cannot be loaded.

    The message names the file, line and field, e.g.
    ``approval.yaml:14 tasks[2].pauseDuration: 'P5X' is not an ISO-8601 duration``.
    """

    code = "invalid_flow"


class TemplateError(PausepointError):
    """A ``{{ … }}`` expression failed to render; names the task and the expression."""

    code = "template_error"
    http_status = 422


class InputValidationError(InvalidInput):
    """Flow or onResume inputs that do not validate."""

    code = "invalid_inputs"


class Forbidden(PausepointError):
    code = "forbidden"
    http_status = 403


class Unauthorized(PausepointError):
    code = "unauthorized"
    http_status = 401


class StoreUnavailable(PausepointError):
    """The database cannot be reached or written just now (a restart, a full disk, a
    read-only file system): HTTP 503 with ``Retry-After``. Nothing was half-written; the
    same request may be sent again."""

    code = "store_unavailable"
    http_status = 503

    def __init__(self, message: str, retry_after: float = 2.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TaskError(PausepointError):
    """Raised by a task body to fail its task run with a clear message."""

    code = "task_failed"


class TaskCancelled(BaseException):
    """Raised into task code when its task run is cancelled.

    Derives from ``BaseException`` so that ``except Exception`` in user code
    cannot swallow a cancellation.
    """
