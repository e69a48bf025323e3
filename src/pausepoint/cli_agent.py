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
from typing import Any

import yaml

from pausepoint.cli import _sigint, console, prompt_resume, styled
from pausepoint.models import LIVE_ONLY_SEQ, EventView, ExecutionView
from pausepoint.service.engine import Engine
from pausepoint.store.records import EventRecord

NAMESPACE = "agents"
FLOW_ID = "cli-agent"


def add_parser(sub: Any) -> None:
    agent = sub.add_parser(
        "agent",
        help="run an agent on a task and steer it live (type to inject, Ctrl-C to pause)",
    )
    agent.add_argument("task", help="what the agent should do")
    agent.add_argument("--model", required=True, help="the model name the server knows")
    agent.add_argument(
        "--base-url",
        default="http://localhost:11434/v1",
        help="OpenAI-compatible API up to /v1 (default: a local Ollama)",
    )
    agent.add_argument(
        "--api-key-secret",
        metavar="NAME",
        help="the secret holding the API key (a stored secret or SECRET_NAME in the environment)",
    )
    agent.add_argument("--system", help="the system prompt")
    agent.add_argument(
        "--tool",
        action="append",
        default=[],
        metavar="MODULE:FUNCTION",
        help="a Python function the model may call (repeatable)",
    )
    agent.add_argument(
        "--approve",
        action="append",
        default=[],
        metavar="TOOL",
        help="a tool whose calls wait for your approval (repeatable; 'always' for all)",
    )
    agent.add_argument("--max-turns", type=int, default=10)
    agent.add_argument("--no-input", action="store_true", help="never read the terminal")


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


async def cmd_agent(engine: Engine, args: argparse.Namespace) -> int:
    record = await engine.put_flow(agent_flow(args))
    execution = await engine.start_execution(
        record.namespace, record.flow_id, inputs={"task": args.task}
    )
    interactive = sys.stdin.isatty() and not args.no_input
    console.print(f"execution {execution.id}")
    if interactive:
        console.print("[dim]type a line to tell the agent something; Ctrl-C pauses[/]")
    view = await Transcript(engine, execution.id, interactive).follow()
    answer = (view.outputs or {}).get("answer")
    if view.state == "COMPLETED" and answer:
        console.print(f"\n[bold]answer:[/] {answer}", soft_wrap=True)
    console.print(f"execution {view.id} {styled(view.state)}")
    if view.error:
        console.print(f"[red]{view.error}[/]")
    return 0 if view.state == "COMPLETED" else 1


class Transcript:
    """Prints an agent execution as a conversation while it runs, and steers it."""

    def __init__(self, engine: Engine, execution_id: str, interactive: bool) -> None:
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
        self.engine.feed.subscribe(self.execution_id, self._published)
        try:
            with _sigint(loop, self._interrupted), self._typing(loop):
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
            self.engine.feed.unsubscribe(self.execution_id, self._published)

    def _published(self, events: list[EventRecord]) -> None:
        for event in events:
            if event.seq == LIVE_ONLY_SEQ and event.type == "agent.delta":
                self.streaming = True
                console.print(str(event.data.get("content", "")), end="", markup=False)
        self.news.set()

    async def _until_paused_or_done(self) -> ExecutionView:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.news.wait(), 0.5)
            self.news.clear()
            for event in await self.engine.events(self.execution_id, after=self.seen):
                self.seen = event.seq
                self._show(event)
            view = await self.engine.execution(self.execution_id)
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
                self.engine.pause(self.execution_id, reason="Ctrl-C", actor="cli")
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
            loop.create_task(self.engine.inject(self.execution_id, line, actor="cli"))

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
                    await self.engine.inject(self.execution_id, answer.strip(), actor="cli")
                await self.engine.resume(self.execution_id, pause_id=manual[0].id, actor="cli")
                self.interrupts = 0
            others = [p for p in view.pause_points if p.kind != "manual"]
            if others:
                await prompt_resume(self.engine, view.model_copy(update={"pause_points": others}))
            return True
        finally:
            loop.add_reader(sys.stdin.fileno(), self._line_typed, loop)
