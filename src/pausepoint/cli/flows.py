"""``validate`` flow files, ``flows apply`` and ``flows ls`` (locally or on a server)."""

from __future__ import annotations

import argparse
from pathlib import Path

from pausepoint.cli.render import console, errors, print_flows
from pausepoint.cli.target import Target


def flow_files(paths: list[Path]) -> list[Path]:
    """The files named, and the ``*.yaml``/``*.yml`` files in the directories named (sorted)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")))
        else:
            found.append(path)
    return found


def cmd_validate(args: argparse.Namespace) -> int:
    """Check flow files without storing them; every problem of every file, one line each.

    Exits 1 when any file has a problem (unsupported Kestra features included).
    """
    from pausepoint.errors import FlowError
    from pausepoint.flow import load_flow_file

    files = flow_files(args.flows)
    if not files:
        errors.print("error: no flow files found", markup=False)
        return 1
    refused = 0
    for path in files:
        try:
            flow = load_flow_file(path)
        except FlowError as error:
            refused += 1
            errors.print(f"error: {error.message}", markup=False, soft_wrap=True)
            continue
        console.print(
            f"[green]ok[/] {path}: flow {flow.namespace}.{flow.id}, "
            f"{len(flow.tasks)} top-level tasks",
            soft_wrap=True,
        )
    if len(files) > 1:
        console.print(f"{len(files) - refused} of {len(files)} flows load", markup=False)
    return 1 if refused else 0


async def cmd_flows(target: Target, args: argparse.Namespace) -> int:
    if args.flows_command == "apply":
        for path in args.files:
            record = await target.plane.apply_flow(path)
            console.print(
                f"{path}: flow {record.namespace}.{record.id} revision {record.revision}",
                markup=False,
                soft_wrap=True,
            )
        return 0
    print_flows(await target.plane.flows())
    return 0
