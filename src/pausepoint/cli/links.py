"""``link`` and ``callback``: a decision link or a callback token, printed as a URL to hand on.

Written against :class:`~pausepoint.cli.target.Target`'s ``reviews``: locally the
link is minted through this process's engine (it starts with the
``PAUSEPOINT_PUBLIC_URL`` setting), with ``--url`` by the server (a path it
answers with is made whole with the server's address).
"""

from __future__ import annotations

import argparse

from pausepoint.cli.options import UsageError
from pausepoint.cli.render import print_minted
from pausepoint.cli.target import Target
from pausepoint.errors import Conflict
from pausepoint.models import PausePointView


async def cmd_link(target: Target, args: argparse.Namespace) -> int:
    pause_id = args.pause_id or await _the_open_request(target, args.id)
    minted = await target.reviews.decision_link(
        args.id,
        pause_id,
        args.approver,
        decision=args.decision,
        groups=args.groups,
        expires_in=args.expires_in,
    )
    print_minted(minted, as_json=args.json)
    return 0


async def cmd_callback(target: Target, args: argparse.Namespace) -> int:
    minted = await target.reviews.callback(args.id, args.task, expires_in=args.expires_in)
    print_minted(minted, as_json=args.json)
    return 0


async def _the_open_request(target: Target, execution_id: str) -> str:
    """The id of the execution's one open approval request; else an error naming them."""
    view = await target.plane.execution(execution_id)
    requests = [point for point in view.pause_points if point.kind == "decision"]
    if len(requests) == 1:
        return requests[0].id
    if not requests:
        raise Conflict(
            f"execution {execution_id} has no open approval request (it is {view.state}): "
            "links are made for open requests"
        )
    listed = ", ".join(_described(point) for point in requests)
    raise UsageError(
        f"execution {execution_id} has {len(requests)} open approval requests; "
        f"name one with --pause-id: {listed}"
    )


def _described(point: PausePointView) -> str:
    title = point.approval.title if point.approval is not None else None
    return f"{point.id} (task {point.task_id}" + (f': "{title}")' if title else ")")
