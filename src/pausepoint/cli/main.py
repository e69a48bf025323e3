"""``main``: parse the command line, run the command, turn errors into exit codes."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from pausepoint.cli.options import UsageError, build_parser
from pausepoint.errors import PausepointError

Command = Callable[[Any, argparse.Namespace], Awaitable[int]]


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    # Imported once the arguments are known to be good: `--help` and a mistake on
    # the command line answer without loading the output machinery.
    from pausepoint.cli.render import print_error

    try:
        code = asyncio.run(dispatch(args))
    except UsageError as error:
        print_error(error)
        code = 2
    except PausepointError as error:
        print_error(error)
        code = 1
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


async def dispatch(args: argparse.Namespace) -> int:
    if args.command == "validate":
        from pausepoint.cli.flows import cmd_validate

        return cmd_validate(args)
    if args.command in ("backup", "restore"):
        from pausepoint.cli import maintenance

        upkeep = {"backup": maintenance.cmd_backup, "restore": maintenance.cmd_restore}
        return await upkeep[args.command](args)
    if args.command == "doctor":  # reads the database itself: no engine, no migration
        from pausepoint.cli.doctor import cmd_doctor

        return await cmd_doctor(args)
    if args.command in ("server", "worker", "dev"):
        from pausepoint.cli import serve

        hosting = {"server": serve.cmd_server, "worker": serve.cmd_worker, "dev": serve.cmd_dev}
        return await hosting[args.command](args)

    from pausepoint.cli.target import open_target

    settings: dict[str, Any] = {}
    # Like `python script.py`: task modules next to the flow and in the working
    # directory import, also when another process continues the execution.
    paths = [Path.cwd()]
    if args.command == "run":
        paths.insert(0, args.flow.resolve().parent)
        if args.enable_shell:
            settings["shell_enabled"] = True
    command = _command(args.command)
    async with open_target(args, python_paths=paths, **settings) as target:
        return await command(target, args)


def _command(name: str) -> Command:
    """The function running command ``name``, importing only its module."""
    if name in ("flows",):
        from pausepoint.cli.flows import cmd_flows

        return cmd_flows
    if name == "triggers":
        from pausepoint.cli.triggers import cmd_triggers

        return cmd_triggers
    if name == "purge":
        from pausepoint.cli.maintenance import cmd_purge

        return cmd_purge
    if name == "keys":
        from pausepoint.cli.keys import cmd_keys

        return cmd_keys
    if name in ("approve", "deny", "inbox"):
        from pausepoint.cli import approvals

        return {
            "approve": approvals.cmd_approve,
            "deny": approvals.cmd_deny,
            "inbox": approvals.cmd_inbox,
        }[name]
    if name in ("link", "callback"):
        from pausepoint.cli import links

        return {"link": links.cmd_link, "callback": links.cmd_callback}[name]
    if name == "agent":
        from pausepoint.cli.agent import cmd_agent

        return cmd_agent
    from pausepoint.cli import executions

    commands: dict[str, Command] = {
        "run": executions.cmd_run,
        "start": executions.cmd_start,
        "ls": executions.cmd_ls,
        "show": executions.cmd_show,
        "state": executions.cmd_state,
        "events": executions.cmd_events,
        "pause": executions.cmd_pause,
        "resume": executions.cmd_resume,
        "cancel": executions.cmd_cancel,
        "terminate": executions.cmd_terminate,
        "inject": executions.cmd_inject,
    }
    return commands[name]
