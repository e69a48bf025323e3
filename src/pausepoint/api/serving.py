"""Serving the API with uvicorn, and stopping it without cutting work short."""

from __future__ import annotations

import asyncio
import contextlib
import socket
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


class WorkerServer(GracefulServer):
    """An HTTP worker's server (``pausepoint server --workers``): stopping, it finishes its
    requests, and after ``hang_up_after`` seconds hangs up on the connections still open
    (SSE streams, which would otherwise keep it alive for as long as their executions
    run). Their clients reconnect, to another worker or a restarted server, and resume
    from their ``Last-Event-ID``."""

    def __init__(self, config: uvicorn.Config, *, hang_up_after: float) -> None:
        super().__init__(config)
        self.hang_up_after = hang_up_after

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        hang_up = asyncio.get_running_loop().call_later(self.hang_up_after, self._hang_up)
        try:
            await super().shutdown(sockets)
        finally:
            hang_up.cancel()

    def _hang_up(self) -> None:
        for connection in list(self.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.close()  # the request sees the client leave and ends
