"""``pausepoint agent "TASK"``: a one-off agent execution, followed live in the terminal.

The command writes a one-task flow (``agents.cli-agent``), starts it with the
task as input and prints the conversation as it happens: streamed tokens,
tool calls and their results, injected messages. While it runs, each line
typed is injected into the agent's context (it reaches the next model call);
Ctrl-C pauses at the next checkpoint, and a second Ctrl-C leaves it paused and
exits. Tool calls that need approval are asked for in the terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import yaml

from pausepoint.cli.live import prompt_resume, sigint
from pausepoint.cli.render import console, styled
from pausepoint.cli.target import Target
from pausepoint.models import LIVE_ONLY_SEQ, EventView, ExecutionView
from pausepoint.surface import ControlSurface

if TYPE_CHECKING:
    from pausepoint.service.engine import Engine
    from pausepoint.service.surface import LiveEvents

NAMESPACE = "agents"
FLOW_ID = "cli-agent"


def agent_flow(args: argparse.Namespace) -> str:
    """The one-task flow for this invocation, as YAML."""
    tools = [{"name": _tool_name(reference), "python": reference} for reference in args.tool]
    approve: Any = "never"
    if "always" in args.approve:
        approve = "always"
    elif args.approve:
        approve = args.approve
    task: dict[str, Any] = {
        "id": "agent",
        "type": "agent",
        "provider": {"baseUrl": args.base_url, "model": args.model},
        "prompt": "{{ inputs.task }}",
        "maxTurns": args.max_turns,
        "tools": tools,
        "approve": approve,
    }
    if args.api_key_secret:
        task["provider"]["apiKey"] = f"{{{{ secrets.{args.api_key_secret} }}}}"
    if args.system:
        task["system"] = args.system
    flow = {
        "id": FLOW_ID,
        "namespace": NAMESPACE,
        "inputs": [{"id": "task", "type": "STRING"}],
        "tasks": [task],
        "outputs": {"answer": "{{ outputs.agent.answer }}"},
    }
    return yaml.safe_dump(flow, sort_keys=False)


def _tool_name(reference: str) -> str:
    return reference.rpartition(":")[2].replace(".", "_")[:64]


async def cmd_agent(target: Target, args: argparse.Namespace) -> int:
    assert target.engine is not None  # the agent runs in this process
    record = await target.plane.apply_flow(agent_flow(args))
    execution = await target.plane.start_execution(
        record.namespace, record.id, inputs={"task": args.task}
    )
    interactive = sys.stdin.isatty() and not args.no_input
    console.print(f"execution {execution.id}")
    if interactive:
        console.print("[dim]type a line to tell the agent something; Ctrl-C pauses[/]")
    view = await Transcript(target.plane, target.engine, execution.id, interactive).follow()
    answer = (view.outputs or {}).get("answer")
    if view.state == "COMPLETED" and answer:
        console.print(f"\n[bold]answer:[/] {answer}", soft_wrap=True)
    console.print(f"execution {view.id} {styled(view.state)}")
    if view.error:
        console.print(f"[red]{view.error}[/]")
    return 0 if view.state == "COMPLETED" else 1


class Transcript:
    """Prints an agent execution as a conversation while it runs, and steers it."""

    def __init__(
        self, plane: ControlSurface, engine: Engine, execution_id: str, interactive: bool
    ) -> None:
        self.plane = plane
        self.engine = engine
        self.execution_id = execution_id
        self.interactive = interactive
        self.seen = 0
        self.news = asyncio.Event()
        self.streaming = False  # a model answer is being printed token by token
        self.interrupts = 0
        self.leave = asyncio.Event()

    async def follow(self) -> ExecutionView:
        loop = asyncio.get_running_loop()
        with self.engine.live_events(self.execution_id) as live:
            relay = loop.create_task(self._relay(live))
            try:
                with sigint(loop, self._interrupted), self._typing(loop):
                    while True:
                        view = await self._until_paused_or_done()
                        if view.is_terminal or self.leave.is_set():
                            return view
                        if not self.interactive:
                            console.print(
                                f"paused: resume with `pausepoint resume {self.execution_id}`"
                            )
                            return view
                        if not await self._resume(view):
                            return view
            finally:
                relay.cancel()

    async def _relay(self, live: LiveEvents) -> None:
        """Print streamed tokens as they come; wake the transcript for everything else."""
        while True:
            event = await live.queue.get()
            if event.seq == LIVE_ONLY_SEQ and event.type == "agent.delta":
                self.streaming = True
                console.print(str(event.data.get("content", "")), end="", markup=False)
            self.news.set()

    async def _until_paused_or_done(self) -> ExecutionView:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.news.wait(), 0.5)
            self.news.clear()
            for event in await self.plane.events(self.execution_id, after=self.seen):
                self.seen = event.seq
                self._show(event)
            view = await self.plane.execution(self.execution_id)
            if view.is_terminal or view.state == "PAUSED" or self.leave.is_set():
                return view

    def _show(self, event: EventView) -> None:
        data = event.data
        if event.type == "agent.message":
            if self.streaming:
                console.print()  # the tokens are already on screen
                self.streaming = False
            elif data.get("content"):
                console.print(f"[bold cyan]agent:[/] {data['content']}", soft_wrap=True)
        elif event.type == "agent.tool_call":
            arguments = json.dumps(data.get("arguments"))
            console.print(f"[magenta]→ {data.get('name')}[/]({arguments})", soft_wrap=True)
        elif event.type == "agent.tool_result":
            color = "red" if data.get("error") else "green"
            console.print(f"[{color}]← {str(data.get('content'))[:500]}[/]", soft_wrap=True)
        elif event.type == "context.injected":
            console.print(f"[yellow]+ {data.get('role')}: {data.get('message')}[/]")
        elif event.type in ("workflow.pausing", "workflow.paused", "workflow.resumed"):
            console.print(f"[yellow]{event.type.removeprefix('workflow.')}[/]")

    def _interrupted(self) -> None:
        self.interrupts += 1
        if self.interrupts == 1:
            console.print("\n[yellow]pausing at the next checkpoint (Ctrl-C again to leave)[/]")
            asyncio.get_running_loop().create_task(
                self.plane.pause(self.execution_id, reason="Ctrl-C")
            )
        else:
            self.leave.set()
            self.news.set()

    @contextlib.contextmanager
    def _typing(self, loop: asyncio.AbstractEventLoop) -> Iterator[None]:
        """While active, each line typed is injected into the agent's context."""
        if not self.interactive:
            yield
            return
        loop.add_reader(sys.stdin.fileno(), self._line_typed, loop)
        try:
            yield
        finally:
            loop.remove_reader(sys.stdin.fileno())

    def _line_typed(self, loop: asyncio.AbstractEventLoop) -> None:
        line = sys.stdin.readline().strip()
        if line:
            loop.create_task(self.plane.inject(self.execution_id, line))

    async def _resume(self, view: ExecutionView) -> bool:
        """Answer what the execution waits for; False to leave it paused."""
        loop = asyncio.get_running_loop()
        loop.remove_reader(sys.stdin.fileno())  # the prompts read the terminal now
        try:
            manual = [p for p in view.pause_points if p.kind == "manual"]
            if manual:
                answer = await asyncio.to_thread(
                    console.input,
                    "[yellow]paused.[/] Enter resumes, a line is injected first, q leaves it: ",
                )
                if answer.strip().lower() == "q":
                    return False
                if answer.strip():
                    await self.plane.inject(self.execution_id, answer.strip())
                await self.plane.resume(self.execution_id, pause_id=manual[0].id)
                self.interrupts = 0
            others = [p for p in view.pause_points if p.kind != "manual"]
            if others:
                await prompt_resume(self.plane, view.model_copy(update={"pause_points": others}))
            return True
        finally:
            loop.add_reader(sys.stdin.fileno(), self._line_typed, loop)
