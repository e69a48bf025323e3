"""Following an execution in the terminal: live task table, Ctrl-C to pause, resume prompts."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape

from pausepoint.cli.render import console, errors, event_line, how_to_go_on, render_runs
from pausepoint.errors import InvalidInput
from pausepoint.models import ExecutionView, PausePointView
from pausepoint.surface import ControlSurface

if TYPE_CHECKING:
    from pausepoint.service.engine import Engine

REFRESH_SECONDS = 0.15


async def follow_live(
    plane: ControlSurface, engine: Engine, execution_id: str, *, interactive: bool
) -> ExecutionView:
    """Show task states live until the execution ends (or is left paused).

    ``engine`` is this process's, which runs the execution: leaving while a
    pause is pending lets its step in flight finish first.
    """
    interrupts = 0
    loop = asyncio.get_running_loop()
    stop_following = asyncio.Event()
    pending: set[asyncio.Task[Any]] = set()

    def on_interrupt() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1:
            console.print(
                "[yellow]pausing at the next checkpoint (Ctrl-C again to leave it "
                "paused and exit)[/]"
            )
            pending.add(loop.create_task(plane.pause(execution_id, reason="Ctrl-C")))
        else:
            stop_following.set()

    with sigint(loop, on_interrupt):
        while True:
            view = await _watch(plane, execution_id, stop_following, interactive)
            if stop_following.is_set() and view.state == "PAUSING":
                # Leaving now would strand the step in flight: let it finish (within the
                # grace period) so that the pause lands before this process exits.
                console.print("[yellow]waiting for the step in flight to finish[/]")
                await engine.drain(engine.settings.shutdown_grace_period)
                view = await plane.execution(execution_id)
            if view.is_terminal or stop_following.is_set():
                return view
            if view.state != "PAUSED":
                continue
            if not interactive:
                if any(p.deadline for p in view.pause_points):
                    await plane.wait(execution_id, until=lambda v: v.state != "PAUSED")
                    continue
                console.print(how_to_go_on(view), markup=False, soft_wrap=True)
                return view
            if not any(p.kind != "decision" for p in view.pause_points):
                # Approval requests are voted on, by whoever the flow names: nothing to ask here.
                console.print(how_to_go_on(view), markup=False, soft_wrap=True)
                return view
            if interrupts:
                if not await _ask_resume_after_interrupt():
                    return view
                interrupts = 0
            await prompt_resume(plane, view)


async def _watch(
    plane: ControlSurface, execution_id: str, stop: asyncio.Event, interactive: bool
) -> ExecutionView:
    """Refresh the task table until the execution pauses, ends or the user leaves."""
    # Note the last event before reading the view, so no change falls in between.
    seen = max((e.seq for e in await plane.events(execution_id)), default=0)
    view = await plane.execution(execution_id)
    if view.is_terminal or view.state == "PAUSED":
        return view
    live_console = console if interactive else Console(quiet=True)
    with Live(render_runs(view), console=live_console, refresh_per_second=8) as live:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), REFRESH_SECONDS)
            events = await plane.events(execution_id, after=seen)
            if not events:
                continue
            seen = events[-1].seq
            if not interactive:
                for event in events:
                    if event.type.startswith("task."):
                        console.print(event_line(event), markup=False)
            view = await plane.execution(execution_id)
            live.update(render_runs(view))
            if view.is_terminal or view.state == "PAUSED":
                break
    return view


async def _ask_resume_after_interrupt() -> bool:
    answer = await asyncio.to_thread(console.input, "[yellow]paused.[/] resume now? \\[y/N] ")
    return answer.strip().lower() in ("y", "yes")


class sigint:
    """Route Ctrl-C to a callback while active (asyncio-friendly)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self.loop = loop
        self.callback = callback

    def __enter__(self) -> None:
        self.loop.add_signal_handler(signal.SIGINT, self.callback)

    def __exit__(self, *exc: object) -> None:
        self.loop.remove_signal_handler(signal.SIGINT)


async def prompt_resume(plane: ControlSurface, view: ExecutionView) -> None:
    """Ask for each open pause point's onResume inputs, then resume it (approval requests
    are voted on, not resumed: they are left to ``pausepoint approve``)."""
    for point in view.pause_points:
        if point.kind == "decision":
            continue
        while True:
            inputs = await asyncio.to_thread(ask_inputs, point)
            try:
                await plane.resume(view.id, inputs=inputs, pause_id=point.id)
                break
            except InvalidInput as error:
                for field in error.errors or ():
                    errors.print(f"[red]{field.loc[-1]}: {field.msg}[/]")
                if not error.errors:
                    errors.print(f"[red]{error}[/]")


def ask_inputs(point: PausePointView) -> dict[str, Any]:
    label = {
        "task": f"task '{point.task_id}'",
        "approval": f"a call of the tool '{point.task_id}', which needs your approval",
    }.get(point.kind, "manual pause")
    console.print(f"[yellow]paused[/] at {label} ({point.id})")
    schema = point.on_resume_schema or {}
    values: dict[str, Any] = {}
    _ask_properties(schema, "", values)
    if not schema.get("properties"):
        console.input("press Enter to resume ")
    return values


def _ask_properties(schema: dict[str, Any], prefix: str, values: dict[str, Any]) -> None:
    required = set(schema.get("required", ()))
    for name, prop in (schema.get("properties") or {}).items():
        key = f"{prefix}{name}"
        if key == "response" and values.get("decision") not in (None, "respond"):
            continue  # a tool call's answer in place of the tool: only to respond
        if prop.get("type") == "object" and "properties" in prop:
            _ask_properties(prop, f"{key}.", values)
            continue
        hint = prop.get("x-pausepoint-type", prop.get("type", ""))
        default = prop.get("default")
        text = f"{key} ({hint})" + (f" [{default}]" if default is not None else "")
        if prop.get("description"):
            console.print(f"  [dim]{prop['description']}[/]")
        answer = console.input(
            f"  {escape(text)}{'*' if name in required else ''}: ",
            password=prop.get("writeOnly", False),
        )
        if answer != "":
            values[key] = answer
