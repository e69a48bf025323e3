"""Approval requests: ``approve`` and ``deny`` (a vote), and ``inbox`` (the open requests).

Written against :class:`~pausepoint.cli.target.Target`'s ``reviews``: the same
code votes as the caller's key on a server and as the local user on the
database.
"""

from __future__ import annotations

import argparse
import sys
from typing import Literal

from pausepoint.cli.options import parse_labels, parse_pairs
from pausepoint.cli.render import print_approvals, print_end, report_vote
from pausepoint.cli.target import Target
from pausepoint.states import ExecutionState


async def cmd_approve(target: Target, args: argparse.Namespace) -> int:
    return await _vote(target, args, "approve")


async def cmd_deny(target: Target, args: argparse.Namespace) -> int:
    return await _vote(target, args, "deny")


async def _vote(
    target: Target, args: argparse.Namespace, decision: Literal["approve", "deny"]
) -> int:
    """Vote; when the vote lets the execution go on in this process, follow it, as
    ``resume`` does (else it would wait for the next process to pick it up).

    Exit 0 once the vote is counted, unless the execution then fails: what a
    decision ends in (CANCELLED after a deny, say) is the flow's choice.
    """
    result = await target.reviews.review(
        args.id,
        decision,
        comment=args.comment,
        inputs=parse_pairs(args.input, "--input"),
        pause_id=args.pause_id,
    )
    code = report_vote(result, decision)
    if args.no_follow or target.engine is None or not target.runs_here(args.id):
        return code
    from pausepoint.cli.live import follow_live

    view = await follow_live(target.plane, target.engine, args.id, interactive=sys.stdin.isatty())
    print_end(view)
    return 1 if view.state in (ExecutionState.FAILED, ExecutionState.TIMED_OUT) else code


async def cmd_inbox(target: Target, args: argparse.Namespace) -> int:
    page = await target.reviews.approvals(
        mine=args.mine,
        namespace=args.namespace,
        flow_id=args.flow,
        labels=parse_labels(args.label),
        older_than=args.older_than,
        limit=args.limit,
    )
    print_approvals(page, as_json=args.json, mine=args.mine)
    return 0
