"""Long-running commands: ``server``, ``worker``, ``dev temporal`` and ``dev postgres``."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

from pausepoint.cli.options import UsageError, settings_for
from pausepoint.cli.render import console
from pausepoint.cli.target import open_engine


async def cmd_server(args: argparse.Namespace) -> int:
    """Run the HTTP API until SIGINT/SIGTERM, then drain.

    With the embedded runtime executions run in this process; with
    ``--runtime temporal`` they run on ``pausepoint worker`` processes, and this
    one records and forwards commands. With ``--workers N`` the HTTP API is
    served by N child processes instead (``service/http_workers.py``), started
    once the flows are loaded and the admin key exists, and stopped first.
    """
    from pausepoint.service.engine import Engine
    from pausepoint.service.hosting import serve_api
    from pausepoint.service.http_workers import HttpWorkers

    extra: dict[str, Any] = {"shell_enabled": True} if args.enable_shell else {}
    paths = [args.flows.resolve()] if args.flows else []
    settings = settings_for(args, python_paths=paths, **extra)
    engine = Engine(settings, serve=True)
    await engine.start()
    try:
        if args.flows:
            loaded = await engine.load_flow_dir(args.flows)
            console.print(f"loaded {len(loaded)} flows from {args.flows}")
        key = await engine.bootstrap_admin_key()
        workers = None
        port = args.port
        if args.workers:
            workers = HttpWorkers.bind(settings, host=args.host, port=args.port, count=args.workers)
            port = workers.port
        base = f"http://{args.host}:{port}"
        if key:
            console.print(
                f"[bold]admin API key for org 'default' (shown once, stored only hashed):[/]\n"
                f"  {key}\n  sign in: {base}/#key={key}",
                soft_wrap=True,
            )
        if workers is None:
            console.print(f"pausepoint serving {base} (API docs: {base}/docs)")
            await serve_api(engine, host=args.host, port=args.port)
        else:
            console.print(
                f"pausepoint serving {base} (API docs: {base}/docs) from {args.workers} HTTP "
                f"worker processes; executions run in this one (pid {os.getpid()})",
                soft_wrap=True,
            )
            await workers.serve()
        console.print("stopping: letting in-flight tasks reach a checkpoint")
        await engine.drain(settings.shutdown_grace_period)
    finally:
        await engine.stop()
    return 0


async def cmd_worker(args: argparse.Namespace) -> int:
    """Run a Temporal worker for pausepoint executions until SIGINT/SIGTERM."""
    from pausepoint.service.hosting import temporal_worker

    extra: dict[str, Any] = {"runtime": "temporal"}
    if args.enable_shell:
        extra["shell_enabled"] = True
    # Like the server: task modules in the working directory import.
    async with open_engine(args, python_paths=[Path.cwd()], **extra) as engine:
        settings = engine.settings
        stopping = _stop_on_signals()
        async with temporal_worker(engine):
            console.print(
                f"pausepoint worker: task queue {settings.temporal_task_queue!r} on "
                f"{settings.temporal_address} (namespace {settings.temporal_namespace!r})"
            )
            await stopping.wait()
            console.print("stopping: letting running tasks finish")
    return 0


async def cmd_dev(args: argparse.Namespace) -> int:
    if args.dev_command == "postgres":
        return await _dev_postgres(args)
    return _dev_temporal(args)


def _dev_temporal(args: argparse.Namespace) -> int:
    """Become a Temporal dev server (until Ctrl-C): signals reach it directly."""
    from pausepoint.service.hosting import temporal_dev_server_command

    ui_port = None if args.headless else (args.ui_port or args.port + 1000)
    command = temporal_dev_server_command(args.port, ui_port=ui_port, db_filename=args.db_filename)
    address = f"127.0.0.1:{args.port}"
    console.print(
        f"Temporal dev server on {address}"
        + (f", web UI http://127.0.0.1:{ui_port}" if ui_port else "")
        + f"\n  pausepoint server --runtime temporal --temporal-address {address}"
        + f"\n  pausepoint worker --temporal-address {address}",
        soft_wrap=True,
    )
    sys.stdout.flush()
    os.execv(command[0], command)


async def _dev_postgres(args: argparse.Namespace) -> int:
    """Run a PostgreSQL server for trying pausepoint out, until Ctrl-C."""
    from pausepoint.service.hosting import DevServiceMissing, start_dev_postgres

    data = args.data.resolve()
    try:
        server = await start_dev_postgres(data)
    except DevServiceMissing as missing:
        raise UsageError(str(missing)) from None
    console.print(
        f"PostgreSQL on {server.url} (data in {data}; Ctrl-C stops it)\n"
        f"  pausepoint --db '{server.url}' server\n"
        f"  export PAUSEPOINT_DB='{server.url}'",
        soft_wrap=True,
        markup=False,
    )
    stop = _stop_on_signals()
    try:
        await stop.wait()
    finally:
        await server.stop()
    console.print("PostgreSQL stopped")
    return 0


def _stop_on_signals() -> asyncio.Event:
    """An event set by the first SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop
