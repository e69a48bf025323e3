"""HTTP clients for a pausepoint server: :class:`AsyncClient` and :class:`Client`.

Both offer the same methods with the same names and results; ``Client`` is
the blocking one (over ``httpx.Client``, no event loop). Every endpoint of the
API has a method and a typed result, and every error status raises one
exception class (a :class:`~pausepoint.errors.PausepointError`)::

    401 Unauthorized   403 Forbidden   404 NotFound   409 Conflict   410 Expired
    413 PayloadTooLarge   422 InvalidInput (``.errors``: one FieldError per field)
    5xx ServerError    other statuses UnexpectedStatus    no answer ConnectionFailed

``follow()`` reads the server-sent event stream of an execution and, when the
connection drops, reconnects with ``Last-Event-ID``: every event arrives once,
in order, and the iteration ends after the execution's terminal event.

``complete_callback()`` and ``heartbeat()`` send no API key or token (the
callback token is the credential): a client made with none can call them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pausepoint.client.errors import (
    ConnectionFailed,
    Expired,
    PayloadTooLarge,
    ServerError,
    UnexpectedStatus,
    error_from,
)
from pausepoint.client.tokens import CallbackOutcome, MintedCallback, MintedLink

if TYPE_CHECKING:
    from pausepoint.client.async_client import AsyncClient
    from pausepoint.client.sync_client import Client

__all__ = [
    "AsyncClient",
    "CallbackOutcome",
    "Client",
    "ConnectionFailed",
    "Expired",
    "MintedCallback",
    "MintedLink",
    "PayloadTooLarge",
    "ServerError",
    "UnexpectedStatus",
    "error_from",
]


def __getattr__(name: str) -> Any:
    # Each client is imported on first use: a command-line call needs one of them,
    # and its start-up pays for every module it imports.
    if name == "AsyncClient":
        from pausepoint.client.async_client import AsyncClient

        return AsyncClient
    if name == "Client":
        from pausepoint.client.sync_client import Client

        return Client
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
