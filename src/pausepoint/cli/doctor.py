"""``pausepoint doctor``: the database's health, read directly (no server needed).

It opens the database read-only and changes nothing (a SQLite database's file
system is probed with a small file, written and removed), so it runs beside
servers writing it, and on a disk that is full. The exit code is 1 when a check finds a
problem (0 when only warnings), so scripts and probes can act on it.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pausepoint.cli.options import _Commands

_MARKS = {"ok": "[green]ok[/]", "warning": "[yellow]warning[/]", "problem": "[red]PROBLEM[/]"}


def add_doctor_command(commands: _Commands) -> None:
    doctor = commands.add(
        "doctor",
        help="check the database: integrity, WAL and free space, schema, stuck leases",
    )
    doctor.add_argument(
        "--full",
        action="store_true",
        help="SQLite: run integrity_check (every page and index) instead of quick_check",
    )
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")


async def cmd_doctor(args: argparse.Namespace) -> int:
    from rich.markup import escape

    from pausepoint.cli.options import UsageError, settings_for
    from pausepoint.cli.render import console
    from pausepoint.service.health import check_database

    if args.url and not args.db:  # $PAUSEPOINT_URL alone: the server's database is elsewhere
        raise UsageError("doctor reads the database itself: give --db (it cannot use --url)")
    report = await check_database(settings_for(args), full=args.full)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        # One line per finding, never wrapped: the output is read by people and grepped.
        console.print(f"{report.dialect} database {escape(report.database)}", soft_wrap=True)
        for finding in report.findings:
            mark = _MARKS.get(finding.status, finding.status)
            padding = " " * max(1, 9 - len(finding.status))
            line = f"  {mark}{padding}{finding.check}: {escape(finding.detail)}"
            console.print(line, soft_wrap=True)
        console.print("healthy" if report.healthy else "[red]problems found[/]")
    return 0 if report.healthy else 1
