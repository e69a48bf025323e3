"""Serving the API with uvicorn, and stopping it without cutting work short."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import uvicorn


class GracefulServer(uvicorn.Server):
    """uvicorn's server, except that the SIGINT or SIGTERM that stopped it is not raised
    again once it has stopped (uvicorn does, to end the process): what follows
    ``serve()`` (letting tasks reach a checkpoint, releasing leases) must still run."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            try:
                yield
            finally:
                self._captured_signals.clear()
