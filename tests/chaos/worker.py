"""A serving pausepoint process for the chaos tests, meant to be SIGKILLed.

Run ``python -m tests.chaos.worker --db sqlite:///PATH --run-log PATH`` from the
repository root (or ``python tests/chaos/worker.py …``). It serves every
execution in the database with short leases, so that after a kill the next
worker takes orphaned executions over within about ``--lease-ttl`` seconds.
With ``--port`` it also serves the HTTP API there (uvicorn, as ``pausepoint
server`` does), so control requests can reach it over HTTP. It prints ``ready``
once it serves, and runs until killed (SIGTERM stops it gracefully).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

import uvicorn

from pausepoint.api import create_app
from pausepoint.config import Settings
from pausepoint.service.engine import Engine
from pausepoint.testing import assert_eventually

CHAOS_DIR = Path(__file__).resolve().parent
RUN_LOG_ENV = "CHAOS_RUN_LOG"  # read by chaos_tasks; kept in step with it


def worker_settings(db: str, *, lease_ttl: float = 1.0, poll_interval: float = 0.05) -> Settings:
    return Settings(
        db=db,
        poll_interval=poll_interval,
        lease_ttl=lease_ttl,
        lease_renew_interval=lease_ttl / 4,
        cancel_grace_period=0.2,
        command_wait_timeout=1.0,
        python_paths=(str(CHAOS_DIR),),
    )


async def serve(settings: Settings, port: int | None = None) -> None:
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    async with Engine(settings, serve=True) as engine:
        http = None if port is None else await start_http(engine, port)
        print("ready", flush=True)
        await stopping.wait()
        if http is not None:
            http.should_exit = True


async def start_http(engine: Engine, port: int) -> uvicorn.Server:
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(engine), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
    )
    serving = asyncio.create_task(server.serve())

    def started() -> bool:
        if serving.done():
            serving.result()  # raises why it could not start
            raise RuntimeError(f"the HTTP server on port {port} stopped before it started")
        return server.started

    await assert_eventually(started, interval=0.01, what=f"the HTTP server on port {port}")
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="database URL (sqlite:///PATH)")
    parser.add_argument("--run-log", help="file the chaos task functions append to")
    parser.add_argument("--lease-ttl", type=float, default=1.0)
    parser.add_argument("--poll-interval", type=float, default=0.05)
    parser.add_argument("--port", type=int, help="also serve the HTTP API on this port")
    args = parser.parse_args(argv)
    if args.run_log:
        os.environ[RUN_LOG_ENV] = args.run_log
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.WARNING,
        format=f"%(asctime)s worker[{os.getpid()}] %(levelname)s %(name)s: %(message)s",
    )
    settings = worker_settings(args.db, lease_ttl=args.lease_ttl, poll_interval=args.poll_interval)
    asyncio.run(serve(settings, args.port))


if __name__ == "__main__":
    main()
