"""``pausepoint purge``, ``backup`` and ``restore``: the database's upkeep, run on it directly.

The parser part (:func:`add_maintenance_commands`) imports only argparse, like
``cli/options.py``; the commands import the service when they run.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pausepoint.cli.options import _Commands
    from pausepoint.cli.target import Target


def add_maintenance_commands(commands: _Commands) -> None:
    purge = commands.add(
        "purge",
        help="delete ended executions (events, task runs, commands, files) past their retention",
    )
    purge.add_argument(
        "--older-than",
        metavar="DURATION",
        help="ended more than this ISO-8601 duration ago (PT720H); default: the retention "
        "settings (PAUSEPOINT_RETENTION)",
    )
    purge.add_argument("--dry-run", action="store_true", help="count, delete nothing")
    purge.add_argument(
        "--org", default="default", help="organization, * for every one (with --older-than)"
    )
    purge.add_argument("--namespace", help="only this namespace and those below it")
    backup = commands.add(
        "backup", help="copy the SQLite database (and its secrets key) while servers run"
    )
    backup.add_argument("path", type=Path, help="the new backup file (never overwritten)")
    restore = commands.add(
        "restore", help="put a backup in place as the database of --db (a new directory)"
    )
    restore.add_argument("backup", type=Path, help="a file `pausepoint backup` wrote")


async def cmd_purge(target: Target, args: argparse.Namespace) -> int:
    from pausepoint.cli.options import UsageError
    from pausepoint.cli.render import console
    from pausepoint.service.retention import apply_retention, purge_older_than

    engine = target.engine
    assert engine is not None  # purge runs on the database, never over --url
    if args.older_than:
        every_org = args.org == "*"
        report = await purge_older_than(
            engine if every_org else engine.as_org(args.org),
            args.older_than,
            dry_run=args.dry_run,
            namespace=args.namespace,
            every_org=every_org,
        )
    elif args.namespace or args.org != "default":
        raise UsageError("--org and --namespace go with --older-than")
    elif not engine.settings.retention:
        raise UsageError("give --older-than DURATION, or set PAUSEPOINT_RETENTION")
    else:
        report = await apply_retention(engine, dry_run=args.dry_run)
    counts = report.model_dump(exclude={"dry_run", "older_than"})
    verb = "would delete" if report.dry_run else "deleted"
    console.print(
        f"{verb} {counts.pop('executions')} ended executions: "
        + ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in counts.items())
    )
    return 0


async def cmd_backup(args: argparse.Namespace) -> int:
    from pausepoint.cli.options import settings_for
    from pausepoint.cli.render import console
    from pausepoint.service.backup import backup, postgres_advice

    settings = settings_for(args)
    if not settings.db.startswith("sqlite"):
        console.print(postgres_advice(settings.db), markup=False)
        return 1
    copied = backup(settings, args.path.resolve())
    console.print(f"backed up {settings.db} to {copied.database}", markup=False)
    if copied.key is not None:
        console.print(f"its secrets key to {copied.key} (keep the two together)", markup=False)
    return 0


async def cmd_restore(args: argparse.Namespace) -> int:
    from pausepoint.cli.options import UsageError, settings_for
    from pausepoint.cli.render import console
    from pausepoint.service.backup import restore

    if not args.db:
        raise UsageError("restore needs --db sqlite:///NEW/DIRECTORY/pausepoint.db")
    settings = settings_for(args)
    copied = restore(args.backup.resolve(), settings.db)
    console.print(f"restored {args.backup} as {settings.db}", markup=False)
    if copied.key is not None:
        console.print(f"with its secrets key, {copied.key}", markup=False)
    return 0
