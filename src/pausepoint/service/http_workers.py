"""Serving the HTTP API from processes of their own: ``pausepoint server --workers N``.

One interpreter runs one thread of Python at a time, so in a single process a
hundred SSE followers and a burst of control requests take their share of it
from the executions' checkpoints. With workers, the server's own process runs
the executions and the loops that must run once (triggers and schedules,
concurrency slots, subflows) and serves no HTTP; N child processes serve the
API, the UI and SSE from one listening socket that it bound and handed down,
each with an engine that runs nothing. They share the database as any
processes may: a command a worker accepts wakes the runner at once, and the
events the runner commits wake the workers' followers at once (LISTEN/NOTIFY
on PostgreSQL, sockets beside a SQLite file: ``store/sqlite_notify.py``).

Workers are started with ``multiprocessing``'s spawn (a fresh interpreter; no
fork of a process holding threads, sockets and a database connection), stopped
with SIGTERM (they stop taking connections and finish their requests), and
started again if one exits on its own.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
import socket
from collections.abc import Callable
from multiprocessing.context import SpawnProcess

from pausepoint.config import Settings
from pausepoint.errors import PausepointError

log = logging.getLogger("pausepoint.server")

# A worker that exits on its own is started again after this many seconds.
RESTART_DELAY = 1.0
# A worker that exits within this many seconds of starting did not start; after
# this many such exits in a row the server gives up.
START_PERIOD = 10.0
FAILED_STARTS_ALLOWED = 3
# Connections waiting for a worker to accept them (uvicorn's default).
BACKLOG = 2048
# A stopping worker hangs up on the connections still open this long after SIGTERM
# (SSE streams: their clients reconnect); it is killed if it has not exited this much later.
HANG_UP_AFTER = 2.0
EXIT_GRACE = 10.0


class HttpWorkersFailed(PausepointError):
    """HTTP worker processes kept exiting as soon as they started."""

    code = "http_workers_failed"


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host:port`` (port 0: any free port), for workers to share."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, not left 0: asyncio turns Nagle's algorithm off only on
    # connections whose socket says TCP, and the accepted ones inherit it from this one
    # (with Nagle on, every small reply waited out the client's delayed ACK: 40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as error:
        sock.close()
        raise PausepointError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    return sock


class HttpWorkers:
    """``count`` processes serving the HTTP API on one socket, kept running until stopped.

    Bind with :meth:`bind` (the socket listens from then on: a connection made
    before a worker is ready waits for it), then :meth:`serve`.
    """

    def __init__(self, settings: Settings, sock: socket.socket, count: int) -> None:
        if count < 1:
            raise ValueError("HTTP workers: at least one")
        self.settings = settings
        self.socket = sock
        self.count = count
        self._context = multiprocessing.get_context("spawn")
        self._processes: dict[int, SpawnProcess] = {}
        self._exits: dict[int, asyncio.Future[None]] = {}
        self._stopping = False

    @classmethod
    def bind(cls, settings: Settings, *, host: str, port: int, count: int) -> HttpWorkers:
        """Listen on ``host:port`` for ``count`` workers; refused for a database in memory,
        which other processes cannot share."""
        if settings.db in ("sqlite://", "sqlite:///:memory:"):
            raise PausepointError(
                "HTTP workers share the database with the server: use a database file "
                "(sqlite:///PATH) or PostgreSQL, not one in memory"
            )
        return cls(settings, listening_socket(host, port), count)

    @property
    def port(self) -> int:
        port: int = self.socket.getsockname()[1]
        return port

    async def serve(self) -> None:
        """Run the workers until SIGINT or SIGTERM, then stop them (they finish their requests).

        Raises :class:`HttpWorkersFailed` if a worker keeps exiting right after it starts."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        signals = (signal.SIGINT, signal.SIGTERM)
        for signum in signals:
            loop.add_signal_handler(signum, stop.set)
        keepers = [
            asyncio.create_task(self._keep(index, stop), name=f"pausepoint-http-worker-{index}")
            for index in range(self.count)
        ]
        stopping = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait([stopping, *keepers], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopping:
                    task.result()  # a keeper ends before the stop only by giving up: why
        finally:
            stopping.cancel()
            for signum in signals:
                loop.remove_signal_handler(signum)
            await self._stop(keepers)
            self.socket.close()

    # -- one worker --------------------------------------------------------------------

    async def _keep(self, index: int, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        failed_starts = 0
        while True:
            started = loop.time()
            self._start(index)
            await asyncio.shield(self._exits[index])
            if stop.is_set() or self._stopping:
                return
            process = self._processes.pop(index)
            process.join()
            code = process.exitcode
            process.close()
            if loop.time() - started < START_PERIOD:
                failed_starts += 1
                if failed_starts >= FAILED_STARTS_ALLOWED:
                    raise HttpWorkersFailed(
                        f"HTTP worker {index} exited {failed_starts} times right after "
                        f"starting (exit code {code}); its output says why"
                    )
            else:
                failed_starts = 0
            log.warning("HTTP worker %s exited (exit code %s); starting it again", index, code)
            await asyncio.sleep(RESTART_DELAY)

    def _start(self, index: int) -> None:
        process = self._context.Process(
            target=serve_in_worker,
            args=(self.settings, self.socket, HANG_UP_AFTER),
            name=f"pausepoint-http-{index}",
            daemon=False,
        )
        process.start()
        self._processes[index] = process
        self._exits[index] = _exit_of(process)

    async def _stop(self, keepers: list[asyncio.Task[None]]) -> None:
        self._stopping = True
        for keeper in keepers:
            keeper.cancel()
        await asyncio.gather(*keepers, return_exceptions=True)
        for process in self._processes.values():
            if process.is_alive():
                process.terminate()  # SIGTERM: stop accepting, finish what is in flight
        exits = [exited for exited in self._exits.values() if not exited.done()]
        if exits:
            await asyncio.wait(exits, timeout=HANG_UP_AFTER + EXIT_GRACE)
        for index, process in self._processes.items():
            # Done: its process let go of everything, and is exiting (maybe not yet reaped).
            if not self._exits[index].done():
                log.warning("HTTP worker %s did not stop in time: killed", process.pid)
                process.kill()
        exits = [exited for exited in self._exits.values() if not exited.done()]
        if exits:
            await asyncio.wait(exits)
        for process in self._processes.values():
            process.join()
            process.close()
        self._processes.clear()
        self._exits.clear()


def _exit_of(process: SpawnProcess) -> asyncio.Future[None]:
    """A future done once ``process`` has exited (its sentinel becomes readable)."""
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[None] = loop.create_future()
    sentinel = process.sentinel

    def readable() -> None:
        loop.remove_reader(sentinel)
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(sentinel, readable)
    return exited


# -- in the worker process ------------------------------------------------------------------


def serve_in_worker(settings: Settings, sock: socket.socket, hang_up_after: float) -> None:
    """A worker's life: an engine that runs nothing, serving HTTP on ``sock`` until SIGTERM
    (or SIGINT once serving: Ctrl-C reaches the whole process group) or until the server
    process is gone."""
    # Until uvicorn handles it, Ctrl-C is the server's to handle: it stops the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.run(_serve(settings, sock, hang_up_after))


async def _serve(settings: Settings, sock: socket.socket, hang_up_after: float) -> None:
    from pausepoint.service.engine import Engine
    from pausepoint.service.hosting import serve_api

    # Stopped while starting: start, then stop at once (uvicorn handles SIGTERM once
    # serving), so that the engine lets go of what it took (its notification socket).
    stopped = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
    engine = Engine(settings, run_executions=False)
    try:
        await engine.start()
        # A server killed outright (SIGKILL, OOM) cannot stop its workers: they stop
        # themselves, or they would go on taking commands nobody runs, holding the port.
        parent = multiprocessing.parent_process()
        if parent is not None:
            _when_gone(parent.sentinel, lambda: signal.raise_signal(signal.SIGTERM))
        if not stopped.is_set():
            await serve_api(engine, sock=sock, hang_up_after=hang_up_after)
    finally:
        await engine.stop()


def _when_gone(sentinel: int, stop: Callable[[], None]) -> None:
    """Call ``stop`` once ``sentinel`` (the server's) becomes readable: the server is gone."""
    loop = asyncio.get_running_loop()

    def gone() -> None:
        loop.remove_reader(sentinel)
        stop()  # SIGTERM, as the server would send: finish requests, then exit

    loop.add_reader(sentinel, gone)
