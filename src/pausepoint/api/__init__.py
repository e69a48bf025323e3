"""The HTTP API: FastAPI routes over the control plane (``pausepoint.Engine``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pausepoint.api.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # Imported on first use: a client-side caller of the package (the CLI's remote
    # mode) must not pay for FastAPI.
    if name == "create_app":
        from pausepoint.api.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
