"""How every command prints: executions, states, events, flows and control replies.

Shared by all commands, local or remote: each takes the public models that
both :class:`~pausepoint.Engine` and :class:`~pausepoint.AsyncClient` return.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from pausepoint.models import ChildView, EventView, ExecutionView, StateView

if TYPE_CHECKING:
    from rich.table import Table

    from pausepoint.client.tokens import MintedCallback, MintedLink
    from pausepoint.models import ApprovalItem, ApprovalPage, ApprovalRequestView, ControlResult
    from pausepoint.wire import ExecutionSummary, FlowSummary, TerminateReply

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)

STATE_STYLES = {
    "QUEUED": "dim",
    "RUNNING": "cyan",
    "PAUSING": "yellow",
    "PAUSED": "yellow",
    "CANCELLING": "magenta",
    "COMPLETED": "green",
    "SUCCESS": "green",
    "WARNING": "dark_orange",
    "FAILED": "red",
    "CANCELLED": "magenta",
    "TERMINATED": "red",
    "TIMED_OUT": "red",
    "SKIPPED": "dim",
    "RETRYING": "yellow",
    "CREATED": "dim",
}


def styled(state: str) -> str:
    return f"[{STATE_STYLES.get(state, 'white')}]{state}[/]"


def print_error(error: BaseException) -> None:
    errors.print(f"[red]error:[/] {escape(str(error))}", soft_wrap=True)


def render_runs(view: ExecutionView) -> Table:
    """The task runs of an execution as a table, children indented under their parent."""
    from rich.table import Table  # tables only where printed: `state` prints none

    table = Table(
        title=f"{view.namespace}.{view.flow_id}  {view.id}  {styled(view.state)}",
        title_justify="left",
        expand=False,
    )
    table.add_column("task")
    table.add_column("state")
    table.add_column("attempt", justify="right")
    table.add_column("detail", overflow="fold", max_width=60)
    depth: dict[str, int] = {}
    for run in view.task_runs:
        level = depth[run.parent] + 1 if run.parent in depth else 0
        depth[run.id] = level
        name = "  " * level + run.task_id + (f" [{run.value}]" if run.value is not None else "")
        detail = run.error or (json.dumps(run.outputs)[:200] if run.outputs else "")
        table.add_row(name, styled(run.state), str(run.attempt), detail)
    return table


def print_executions(executions: Sequence[ExecutionSummary]) -> None:
    from rich.table import Column, Table

    table = Table("flow", "state", "created", "labels")
    table.columns.insert(0, Column("id", no_wrap=True))
    for execution in executions:
        table.add_row(
            execution.id,
            f"{execution.namespace}.{execution.flow_id}",
            styled(execution.state),
            execution.created_at,
            ", ".join(f"{k}={v}" for k, v in execution.labels.items()),
        )
    console.print(table)


def print_view(
    view: ExecutionView,
    *,
    as_json: bool,
    tree: Sequence[tuple[int, ExecutionView | ChildView]] | None = None,
) -> None:
    """An execution; ``tree``: the executions below it with their depth, depth-first
    (without it, its children)."""
    if as_json:
        console.print_json(view.model_dump_json())
        return
    console.print(render_runs(view))
    if view.parent_id:
        console.print(
            f"subflow of execution {view.parent_id} (task run {view.parent_task_run_id}, "
            f"root {view.root_id})",
            markup=False,
        )
    for point in view.pause_points:
        waited = point.child_execution_id
        console.print(
            f"open pause point {point.id} ({point.kind}"
            f"{', task ' + str(point.task_id) if point.task_id else ''}"
            f"{', waits for execution ' + waited if waited else ''})",
            markup=False,
        )
    for below in view.descendant_pause_points:
        point = below.pause_point
        console.print(
            f"open pause point {point.id} ({point.kind}, task {point.task_id}) "
            f"in subflow execution {below.execution_id}",
            markup=False,
        )
    if view.busy_descendants:
        console.print(f"still moving below it: {', '.join(view.busy_descendants)}", markup=False)
    print_tree(view, tree if tree is not None else [(1, child) for child in view.children])
    for message in view.context:
        console.print(f"context #{message.seq} {message.role}: {message.message}", markup=False)
    if view.error:
        console.print(f"[red]{escape(view.error)}[/]")


def print_tree(view: ExecutionView, tree: Sequence[tuple[int, ExecutionView | ChildView]]) -> None:
    if not tree:
        return
    console.print(f"subflows ({len(tree)}):")
    own = {child.id: child for child in view.children}
    for depth, node in tree:
        line = f"{'  ' * depth}{node.id} {node.namespace}.{node.flow_id} {styled(node.state)}"
        child = own.get(node.id)
        if child is not None and not child.waits:
            line += " [dim](not waited for)[/]"
        if child is not None and child.cascade_error:
            line += f" [red]cascade failed: {escape(child.cascade_error)}[/]"
        console.print(line)


def print_state(state: StateView, *, as_json: bool) -> None:
    if as_json:
        console.print_json(state.model_dump_json())
        return
    line = f"{state.execution_id} {styled(state.state)}"
    if state.checkpoint:
        line += f" at {escape(state.checkpoint)}"
    if state.pause_reason:
        line += f" ({escape(state.pause_reason)})"
    console.print(line)
    for point in state.pause_points:
        console.print(
            f"  pause point {point.id}: {point.kind}"
            + (f" task {point.task_id}" if point.task_id else "")
            + (f", deadline {point.deadline}" if point.deadline else ""),
            markup=False,
        )


def print_event(event: EventView, *, as_json: bool) -> None:
    console.print(
        event.model_dump_json() if as_json else event_line(event), markup=False, soft_wrap=True
    )


def event_line(event: EventView) -> str:
    data = json.dumps(event.data, default=str)
    return f"{event.seq:>5} {event.at} {event.type} {data}"


def report(result: ControlResult | TerminateReply) -> int:
    """Print a control reply; exit code 1 if the command was refused when applied."""
    console.print(
        f"{escape(result.message)}; execution {result.execution_id} is {styled(result.state)}",
        soft_wrap=True,
    )
    return 0 if getattr(result, "applied", None) is not False else 1


def report_vote(result: ControlResult, decision: str) -> int:
    """Print the reply to a vote (its command is a resume: say what it was); exit code 1
    if it was refused when applied."""
    vote = {"approve": "approval", "deny": "denial"}.get(decision, decision)
    request = f" of {result.pause_id}" if result.pause_id else ""
    if result.applied is None:
        said = f"your {vote}{request} is accepted; it is counted at the next checkpoint"
    elif result.applied:
        said = f"your {vote}{request} is counted"
    else:
        said = f"your {vote}{request} was not counted ({escape(result.message)})"
    console.print(
        f"{said}; execution {result.execution_id} is {styled(result.state)}", soft_wrap=True
    )
    return 0 if result.applied is not False else 1


def print_minted(minted: MintedLink | MintedCallback, *, as_json: bool) -> None:
    """A decision link's or callback token's URL, alone on its line (for a pipe), or the
    whole reply; a note on stderr when the URL is only a path."""
    if as_json:
        console.print_json(minted.model_dump_json())
    else:
        console.print(minted.url, markup=False, soft_wrap=True)
    if not minted.url.startswith(("http://", "https://")):
        errors.print(
            "note: this is a path on the server: set PAUSEPOINT_PUBLIC_URL to its address "
            "(http://host:port) for whole URLs",
            markup=False,
            soft_wrap=True,
        )


def settled(view: ExecutionView) -> bool:
    return view.is_terminal or view.state == "PAUSED"


def print_end(view: ExecutionView) -> None:
    """The last line of a command that followed an execution."""
    console.print(f"execution {view.id} {styled(view.state)}")


def print_outcome(view: ExecutionView) -> int:
    """The end of ``start --wait``: 0 if it completed (or waits for a human), else 1."""
    print_end(view)
    if view.error:
        console.print(f"[red]{escape(view.error)}[/]")
    if view.state == "PAUSED":
        console.print(how_to_go_on(view), markup=False, soft_wrap=True)
    return 0 if view.state in ("COMPLETED", "PAUSED") else 1


def how_to_go_on(view: ExecutionView) -> str:
    """What a person does about a paused execution: vote on its approval requests (which
    are never resumed), or resume it."""
    if any(point.kind == "decision" for point in view.pause_points):
        return (
            f"waiting for approval: `pausepoint approve {view.id}` or "
            f"`pausepoint deny {view.id}` (`pausepoint inbox` lists the requests)"
        )
    return f"paused: resume with `pausepoint resume {view.id}`"


def print_flows(flows: Sequence[FlowSummary]) -> None:
    from rich.table import Table

    table = Table("flow", "revision", "created")
    for flow in flows:
        table.add_row(f"{flow.namespace}.{flow.id}", str(flow.revision), flow.created_at)
    console.print(table)


def print_approvals(page: ApprovalPage, *, as_json: bool, mine: bool) -> None:
    """The inbox: one line per open request (``--pause-id`` shown where an execution has
    several), then how many were left out."""
    if as_json:
        console.print_json(page.model_dump_json())
        return
    if not page.items:
        console.print(f"no open approval requests{' you may vote on' if mine else ''}")
        return
    per_execution = Counter(item.execution_id for item in page.items)
    for item in page.items:
        line = approval_line(item, name_the_request=per_execution[item.execution_id] > 1)
        console.print(line, markup=False, soft_wrap=True)
    if page.total > len(page.items):
        console.print(f"{len(page.items)} of {page.total} open requests shown (see --limit)")


def approval_line(item: ApprovalItem, *, name_the_request: bool = False) -> str:
    """Execution, flow, task, title, time waiting, votes against the quorum, and what the
    caller may do (or why not)."""
    parts = [item.execution_id, f"{item.namespace}.{item.flow_id}", f"task {item.task_id}"]
    if name_the_request:
        parts.append(f"--pause-id {item.pause_id}")
    if item.request.title:
        parts.append(json.dumps(" ".join(item.request.title.split()), ensure_ascii=False))
    parts.append(f"waiting {waiting_time(item.waiting_seconds)}")
    parts.append(votes_against_quorum(item.request))
    me = item.me
    if me.may_approve:
        parts.append("you may approve or deny")
    elif me.may_deny:
        parts.append(f"you may deny, not approve ({me.why_not})")
    elif me.voted:
        parts.append(f"you voted {me.voted}")
    else:
        parts.append(f"you may not vote: {me.why_not}")
    return "  ".join(parts)


def votes_against_quorum(request: ApprovalRequestView) -> str:
    """``approvals 1/2`` (per group: ``approvals ops 1/1, security 0/1``), and any denials."""
    approvals = [vote for vote in request.votes if vote.decision == "approve"]
    if isinstance(request.quorum, int):
        text = f"approvals {len(approvals)}/{request.quorum}"
    else:
        text = "approvals " + ", ".join(
            f"{group} {sum(1 for vote in approvals if group in vote.groups)}/{needed}"
            for group, needed in request.quorum.items()
        )
    denials = len(request.votes) - len(approvals)
    return text + (f", denials {denials}" if denials else "")


def waiting_time(seconds: float) -> str:
    """``45s``, ``12m``, ``3h05m``, ``2d4h``: how long a request has been open."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600}h"
