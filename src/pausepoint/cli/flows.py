"""``validate`` a flow file, ``flows apply`` and ``flows ls`` (locally or on a server)."""

from __future__ import annotations

import argparse

from pausepoint.cli.render import console, print_flows
from pausepoint.cli.target import Target


def cmd_validate(args: argparse.Namespace) -> int:
    """Check a flow file without storing it: every problem raises one ``FlowError``."""
    from pausepoint.flow import load_flow_file

    flow = load_flow_file(args.flow)
    console.print(
        f"[green]ok[/] {args.flow}: flow {flow.namespace}.{flow.id}, "
        f"{len(flow.tasks)} top-level tasks"
    )
    return 0


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
