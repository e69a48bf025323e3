"""The CLI's remote mode: the read, control, ``flows`` and ``start`` commands over HTTP.

Chosen by ``--url`` (or ``$PAUSEPOINT_URL``); every command here calls only
:class:`pausepoint.AsyncClient` and prints what the local command prints. The
server runs the executions, so nothing here follows an execution unless asked
(``events --follow``, ``start --wait``).
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable

from pausepoint.cli import (
    UsageError,
    console,
    flow_ref,
    parse_pairs,
    print_event,
    print_executions,
    print_flows,
    print_outcome,
    print_state,
    print_view,
    report,
    settled,
    styled,
)
from pausepoint.client import AsyncClient


async def dispatch(args: argparse.Namespace) -> int:
    if not args.url.startswith(("http://", "https://")):
        raise UsageError(f"--url must start with http:// or https://, got {args.url!r}")
    async with AsyncClient(args.url, api_key=args.api_key) as client:
        return await COMMANDS[args.command](client, args)


async def cmd_ls(client: AsyncClient, args: argparse.Namespace) -> int:
    page = await client.list_executions(
        state=args.state, namespace=args.namespace, flow_id=args.flow, limit=args.limit
    )
    print_executions(
        [(e.id, f"{e.namespace}.{e.flow_id}", e.state, e.created_at, e.labels) for e in page.items]
    )
    return 0


async def cmd_show(client: AsyncClient, args: argparse.Namespace) -> int:
    print_view(await client.execution(args.id), as_json=args.json)
    return 0


async def cmd_state(client: AsyncClient, args: argparse.Namespace) -> int:
    print_state(await client.state(args.id), as_json=args.json)
    return 0


async def cmd_events(client: AsyncClient, args: argparse.Namespace) -> int:
    if args.follow:
        async for event in client.follow(args.id):
            print_event(event, as_json=args.json)
        return 0
    for event in await client.events(args.id):
        print_event(event, as_json=args.json)
    return 0


async def cmd_pause(client: AsyncClient, args: argparse.Namespace) -> int:
    return report(await client.pause(args.id, reason=args.reason))


async def cmd_resume(client: AsyncClient, args: argparse.Namespace) -> int:
    inputs = parse_pairs(args.input, "--input")
    return report(await client.resume(args.id, inputs, pause_id=args.pause_id))


async def cmd_cancel(client: AsyncClient, args: argparse.Namespace) -> int:
    return report(await client.cancel(args.id, reason=args.reason))


async def cmd_terminate(client: AsyncClient, args: argparse.Namespace) -> int:
    return report(await client.terminate(args.id, args.reason))


async def cmd_inject(client: AsyncClient, args: argparse.Namespace) -> int:
    return report(await client.inject(args.id, args.message, role=args.role))


async def cmd_flows(client: AsyncClient, args: argparse.Namespace) -> int:
    if args.flows_command == "apply":
        for path in args.files:
            record = await client.apply_flow(path)
            console.print(
                f"{path}: flow {record.namespace}.{record.id} revision {record.revision}",
                markup=False,
                soft_wrap=True,
            )
        return 0
    print_flows([(f.namespace, f.id, f.revision, f.created_at) for f in await client.flows()])
    return 0


async def cmd_start(client: AsyncClient, args: argparse.Namespace) -> int:
    namespace, flow_id = flow_ref(args.flow)
    view = await client.start(
        namespace,
        flow_id,
        inputs=parse_pairs(args.input, "--input"),
        labels=parse_pairs(args.label, "--label"),
    )
    console.print(f"execution {view.id} {styled(view.state)}")
    if not args.wait:
        return 0
    return print_outcome(await client.wait(view.id, until=settled))


COMMANDS: dict[str, Callable[[AsyncClient, argparse.Namespace], Awaitable[int]]] = {
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
