"""Commands on executions: run, start, ls, show, state, events and the control verbs.

Each is written once against :class:`~pausepoint.cli.target.Target`: the same
code runs on this process's engine and on a server. Only what needs this
process (``run``, or following an execution that runs here) uses the engine.
"""

from __future__ import annotations

import argparse
import sys

from pausepoint.cli.options import flow_ref, parse_pairs
from pausepoint.cli.render import (
    console,
    print_end,
    print_event,
    print_executions,
    print_outcome,
    print_state,
    print_view,
    report,
    settled,
    styled,
)
from pausepoint.cli.target import Target
from pausepoint.models import ExecutionView


async def cmd_run(target: Target, args: argparse.Namespace) -> int:
    """Store the flow file, start it, and follow it here until it ends or is left paused."""
    from pausepoint.cli.live import follow_live

    assert target.engine is not None  # `run` always runs in this process
    plane = target.plane
    record = await plane.apply_flow(args.flow)
    execution = await plane.start_execution(
        record.namespace,
        record.id,
        inputs=parse_pairs(args.input, "--input"),
        labels=parse_pairs(args.label, "--label"),
    )
    interactive = sys.stdin.isatty() and sys.stdout.isatty() and not args.no_input
    if not interactive:
        console.print(f"execution {execution.id}")
    view = await follow_live(plane, target.engine, execution.id, interactive=interactive)
    print_end(view)
    if view.error:
        console.print(f"[red]{view.error}[/]")
    return 0 if view.state == "COMPLETED" else 1


async def cmd_start(target: Target, args: argparse.Namespace) -> int:
    namespace, flow_id = flow_ref(args.flow)
    view = await target.plane.start_execution(
        namespace,
        flow_id,
        inputs=parse_pairs(args.input, "--input"),
        labels=parse_pairs(args.label, "--label"),
    )
    console.print(f"execution {view.id} {styled(view.state)}")
    if not args.wait:
        return 0
    return print_outcome(await target.plane.wait(view.id, until=settled))


async def cmd_ls(target: Target, args: argparse.Namespace) -> int:
    page = await target.plane.execution_page(
        states=[s.upper() for s in args.state or ()],
        namespace=args.namespace,
        flow_id=args.flow,
        limit=args.limit,
    )
    print_executions(page.items)
    return 0


TREE_LIMIT = 200  # subflow executions `show` draws below an execution


async def cmd_show(target: Target, args: argparse.Namespace) -> int:
    view = await target.plane.execution(args.id)
    tree = await subflow_tree(target, view) if not args.json and view.children else None
    print_view(view, as_json=args.json, tree=tree)
    return 0


async def subflow_tree(target: Target, view: ExecutionView) -> list[tuple[int, ExecutionView]]:
    """The executions below ``view``, depth-first with their depth (at most TREE_LIMIT)."""
    tree: list[tuple[int, ExecutionView]] = []
    pending = [(1, child.id) for child in reversed(view.children)]
    while pending and len(tree) < TREE_LIMIT:
        depth, execution_id = pending.pop()
        child = await target.plane.execution(execution_id)
        tree.append((depth, child))
        pending.extend((depth + 1, grandchild.id) for grandchild in reversed(child.children))
    return tree


async def cmd_state(target: Target, args: argparse.Namespace) -> int:
    print_state(await target.plane.state(args.id), as_json=args.json)
    return 0


async def cmd_events(target: Target, args: argparse.Namespace) -> int:
    if args.follow:
        async for event in target.plane.follow(args.id):
            print_event(event, as_json=args.json)
        return 0
    for event in await target.plane.events(args.id):
        print_event(event, as_json=args.json)
    return 0


async def cmd_pause(target: Target, args: argparse.Namespace) -> int:
    return report(
        await target.plane.pause(
            args.id, reason=args.reason, cascade=args.cascade, freeze_clock=args.freeze_clock
        )
    )


async def cmd_resume(target: Target, args: argparse.Namespace) -> int:
    """Resume; when this process then runs the execution, follow it until it settles."""
    result = await target.plane.resume(
        args.id,
        inputs=parse_pairs(args.input, "--input"),
        pause_id=args.pause_id,
        cascade=args.cascade,
    )
    code = report(result)
    if args.no_follow or target.engine is None or not target.runs_here(args.id):
        return code
    from pausepoint.cli.live import follow_live

    view = await follow_live(target.plane, target.engine, args.id, interactive=sys.stdin.isatty())
    print_end(view)
    return 0 if view.state in ("COMPLETED", "PAUSED") else 1


async def cmd_cancel(target: Target, args: argparse.Namespace) -> int:
    """Cancel; when this process runs the execution, wait here until the cancel lands."""
    code = report(await target.plane.cancel(args.id, reason=args.reason, cascade=args.cascade))
    if target.runs_here(args.id):
        print_end(await target.plane.wait(args.id))
    return code


async def cmd_terminate(target: Target, args: argparse.Namespace) -> int:
    return report(await target.plane.terminate(args.id, reason=args.reason, cascade=args.cascade))


async def cmd_inject(target: Target, args: argparse.Namespace) -> int:
    return report(await target.plane.inject(args.id, args.message, role=args.role))
