"""``pausepoint triggers ls|pause|resume``: a flow's triggers, locally or on a server."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from rich.table import Table

from pausepoint.cli.options import flow_ref
from pausepoint.cli.render import console
from pausepoint.cli.target import Target
from pausepoint.models import TriggerView


def print_triggers(triggers: Sequence[TriggerView]) -> None:
    table = Table("trigger", "type", "state", "next", "last fired", "last execution", "last error")
    for trigger in triggers:
        state = "paused" if trigger.paused else "disabled" if trigger.disabled else "active"
        table.add_row(
            trigger.trigger_id,
            trigger.type,
            state,
            trigger.next_fire or "",
            trigger.last_fired_at or "",
            trigger.last_execution_id or "",
            trigger.last_error or "",
        )
    console.print(table)


async def cmd_triggers(target: Target, args: argparse.Namespace) -> int:
    namespace, flow_id = flow_ref(args.flow)
    plane = target.plane
    if args.triggers_command == "ls":
        print_triggers(await plane.triggers(namespace, flow_id))
        return 0
    if args.triggers_command == "pause":
        view = await plane.pause_trigger(namespace, flow_id, args.trigger)
    else:
        view = await plane.resume_trigger(namespace, flow_id, args.trigger, catch_up=args.catch_up)
    state = "paused" if view.paused else f"resumed ({args.catch_up})"
    console.print(f"trigger {view.trigger_id} of {namespace}.{flow_id}: {state}", markup=False)
    return 0
