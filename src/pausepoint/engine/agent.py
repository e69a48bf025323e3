"""The ``agent`` task: an LLM loop the engine drives one leaf run at a time.

An agent run holds the conversation. Each model call is a child leaf run
(type ``agent_llm``) and each tool call is a child leaf run of the tool's task,
so every turn is a checkpoint: a pause lands between calls, a crash re-runs
only the call that had not been recorded, and messages injected into the
execution's context join the conversation when the next model call is created
— once, in order, after the tool results of the turn before.

A model call's run keeps only ``upto`` (how many messages it sends): its
request is rebuilt from the conversation whenever it runs, so secrets in the
provider settings are rendered then and never stored.

Tool calls that need approval open a pause point (kind ``approval``) whose
``onResume`` inputs are the decision, a reason and the (editable) arguments.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pausepoint.engine.model import TERMINAL_TASK_STATES, TaskRunState
from pausepoint.engine.state import AgentConversation, PausePoint, TaskRun, ToolCall
from pausepoint.flow.model import AgentTask
from pausepoint.flow.templates import render

if TYPE_CHECKING:
    from pausepoint.engine.scheduler import Scheduler

T = TaskRunState

MODEL_CALL = "agent_llm"
DECISIONS = ("approve", "reject", "respond")


def start_agent(sched: Scheduler, run: TaskRun, task: AgentTask) -> None:
    variables = sched.variables(run)
    where = f"task '{task.id}'"
    messages: list[dict[str, Any]] = []
    if task.system:
        system = render(task.system, variables, where=where)
        messages.append({"role": "system", "content": str(system)})
    messages.append({"role": "user", "content": str(render(task.prompt, variables, where=where))})
    conversation: AgentConversation = {
        "messages": messages,
        "delivered": 0,
        "turns": 0,
        "usage": [],
        "call": None,
        "queue": [],
    }
    run["agent"] = conversation
    sched.mark_started(run)


def drive_agent(sched: Scheduler, run: TaskRun) -> None:
    """Advance the loop as far as it can go now."""
    agent = run["agent"]
    task = sched.index.task(run["path"])
    assert isinstance(task, AgentTask)
    while run["state"] not in TERMINAL_TASK_STATES:
        if agent["call"] is not None:
            child = sched.runs[agent["call"]]
            sched.drive_run(child)
            if child["state"] not in TERMINAL_TASK_STATES:
                return
            agent["call"] = None
            sched.touch(run)
            if child["type"] == MODEL_CALL:
                _answered(sched, run, task, child)
            else:
                _tool_done(sched, run, child)
            continue
        if not sched.can_start():
            return
        if agent["queue"]:
            _call_tool(sched, run, task, agent["queue"].pop(0))
        elif agent["turns"] >= task.max_turns:
            sched.finish_run(
                run, T.FAILED, error=f"agent '{task.id}' reached maxTurns ({task.max_turns})"
            )
        else:
            _call_model(sched, run)


def _injected_message(role: str, message: str) -> dict[str, Any]:
    """An injected message as the model reads it. A ``tool`` message answers a tool call
    by its id, and an injected one answers none, so the model reads it as the user's,
    marked as a tool's (model APIs refuse a tool message without its call)."""
    if role == "tool":
        return {"role": "user", "content": f"[tool] {message}"}
    return {"role": role, "content": message}


def _call_model(sched: Scheduler, run: TaskRun) -> None:
    agent = run["agent"]
    context = sched.state["context"]["messages"]
    for entry in context[agent["delivered"] :]:
        agent["messages"].append(_injected_message(entry["role"], entry["message"]))
    agent["delivered"] = len(context)
    child = sched.new_run(run, task_id=run["task_id"], path=run["path"], type=MODEL_CALL)
    child["upto"] = len(agent["messages"])
    child["turn"] = agent["turns"] + 1
    agent["call"] = child["id"]
    sched.touch(run)
    sched.start_leaf(child)


def _answered(sched: Scheduler, run: TaskRun, task: AgentTask, child: TaskRun) -> None:
    agent = run["agent"]
    if child["state"] != T.SUCCESS:
        if child["state"] == T.FAILED:
            sched.finish_run(run, T.FAILED, error=f"model call failed: {child.get('error')}")
        return  # cancelled: the execution is stopping
    outputs = child.get("outputs") or {}
    message = dict(outputs.get("message") or {"role": "assistant", "content": ""})
    message["role"] = "assistant"
    agent["messages"].append(message)
    agent["turns"] += 1
    agent["usage"].append(outputs.get("usage") or {})
    calls = list(message.get("tool_calls") or [])
    sched.emit(
        "agent.message",
        task_run_id=run["id"],
        task_id=run["task_id"],
        turn=agent["turns"],
        content=message.get("content"),
        tool_calls=len(calls),
    )
    if calls:
        agent["queue"] = [_tool_call(call) for call in calls]
        return
    sched.finish_run(
        run,
        T.SUCCESS,
        outputs={
            "answer": message.get("content") or "",
            "turns": agent["turns"],
            "messages": agent["messages"],
            "usage": {"turns": agent["usage"], "total": _total(agent["usage"])},
        },
    )


def _tool_call(call: dict[str, Any]) -> ToolCall:
    function = call.get("function") or {}
    raw = function.get("arguments")
    try:
        arguments = json.loads(raw) if isinstance(raw, str) else (raw or {})
        error = None if isinstance(arguments, dict) else "arguments must be a JSON object"
    except ValueError as problem:
        arguments, error = {}, f"arguments are not valid JSON: {problem}"
    return {
        "id": str(call.get("id") or ""),
        "name": str(function.get("name") or ""),
        "arguments": arguments if isinstance(arguments, dict) else {},
        "error": error,
    }


def _total(usage: list[dict[str, Any]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for turn in usage:
        for key, value in turn.items():
            if isinstance(value, int) and not isinstance(value, bool):
                total[key] = total.get(key, 0) + value
    return total


def _call_tool(sched: Scheduler, run: TaskRun, task: AgentTask, call: ToolCall) -> None:
    names = [tool.name for tool in task.tools]
    sched.emit(
        "agent.tool_call",
        task_run_id=run["id"],
        task_id=run["task_id"],
        tool_call_id=call["id"],
        name=call["name"],
        arguments=call["arguments"],
    )
    if call["name"] not in names:
        available = ", ".join(names) or "none"
        error = f"error: unknown tool {call['name']!r}; tools: {available}"
        _reply(sched, run, call["id"], call["name"], error, True)
        return
    if call["error"]:
        _reply(sched, run, call["id"], call["name"], f"error: {call['error']}", True)
        return
    position = names.index(call["name"])
    tool_path = f"{run['path']}.tools[{position}]"
    tool_task = sched.index.task(tool_path)
    child = sched.new_run(run, task_id=tool_task.id, path=tool_path, type=tool_task.type)
    child["tool_call_id"] = call["id"]
    child["args"] = call["arguments"]
    run["agent"]["call"] = child["id"]
    sched.touch(run)
    if task.needs_approval(call["name"]) and _asks(sched, run, task, call):
        _ask_approval(sched, child, call)
    else:
        sched.start_leaf(child)


def _asks(sched: Scheduler, run: TaskRun, task: AgentTask, call: ToolCall) -> bool:
    """Whether this call waits: ``approve.when`` rendered with the call (true without one)."""
    when = task.approve_when
    if when is None:
        return True
    variables = {
        **sched.variables(run),
        "call": {"name": call["name"], "arguments": call["arguments"]},
    }
    rendered = render(when, variables, where=f"task '{task.id}' approve.when")
    if isinstance(rendered, str):
        return rendered.strip().lower() == "true"
    return bool(rendered)


def _ask_approval(sched: Scheduler, child: TaskRun, call: ToolCall) -> None:
    pause_id = f"p-{child['id']}"
    sched.mark_started(child)
    child["state"] = T.PAUSED.value
    child["pause_id"] = pause_id
    sched.state["pauses"][pause_id] = {
        "kind": "approval",
        "task_path": child["path"],
        "task_id": child["task_id"],
        "task_run_id": child["id"],
        "opened_at": sched.at,
        "deadline": None,
        "on_resume": approval_inputs(call["name"], call["arguments"]),
    }
    sched.emit(
        "task.paused",
        task_run_id=child["id"],
        task_id=child["task_id"],
        pause_id=pause_id,
        deadline=None,
        behavior=None,
        on_resume=["decision", "reason", "arguments"],
    )


def approval_inputs(tool: str, arguments: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``onResume`` inputs of an approval: decision, reason, editable arguments."""
    return [
        {
            "id": "decision",
            "type": "SELECT",
            "values": list(DECISIONS),
            "description": f"Run the tool '{tool}' with these arguments, or reject the call.",
        },
        {
            "id": "reason",
            "type": "STRING",
            "required": False,
            "description": "Told to the model when the call is rejected.",
        },
        {
            "id": "arguments",
            "type": "JSON",
            "required": False,
            "defaults": arguments,
            "description": "The arguments the tool runs with (edit them to correct the call).",
        },
        {
            "id": "response",
            "type": "JSON",
            "required": False,
            "description": "respond: what the model reads as the tool's result (it does not run).",
        },
    ]


def resume_approval(
    sched: Scheduler, pause: PausePoint, values: dict[str, Any], *, by: str
) -> None:
    child = sched.runs[pause["task_run_id"]]
    sched.close_pause(f"p-{child['id']}")
    child["outputs"] = {"approval": {**values, "by": by}}
    sched.emit(
        "workflow.resumed",
        pause_id=f"p-{child['id']}",
        task_id=child["task_id"],
        task_run_id=child["id"],
        by=by,
        inputs=values,
    )
    if values.get("decision") == "approve":
        arguments = values.get("arguments")
        if isinstance(arguments, dict):
            child["args"] = arguments
        child["state"] = T.CREATED.value
        sched.touch(child)
    elif values.get("decision") == "respond":
        # The tool does not run: the model reads this person's answer as its result.
        sched.finish_run(child, T.SUCCESS, outputs={"response": values.get("response")})
        child["responded"] = True
    else:
        reason = values.get("reason") or "no reason given"
        sched.finish_run(child, T.SKIPPED)
        child["rejected"] = f"the call was rejected by {by}: {reason}"


def _tool_done(sched: Scheduler, run: TaskRun, child: TaskRun) -> None:
    call_id, name = child.get("tool_call_id", ""), child["task_id"]
    if child.get("responded"):
        response = (child.get("outputs") or {}).get("response")
        content = response if isinstance(response, str) else json.dumps(response)
        _reply(sched, run, call_id, name, content, False)
    elif child["state"] in (T.SUCCESS, T.WARNING):
        _reply(sched, run, call_id, name, json.dumps(child.get("outputs") or {}), False)
    elif child["state"] == T.FAILED:
        _reply(sched, run, call_id, name, f"error: {child.get('error')}", True)
    elif child.get("rejected"):
        _reply(sched, run, call_id, name, child["rejected"], True)
    # Cancelled: the execution is stopping and nothing more is asked of the model.


def _reply(
    sched: Scheduler, run: TaskRun, call_id: str, name: str, content: str, is_error: bool
) -> None:
    run["agent"]["messages"].append(
        {"role": "tool", "tool_call_id": call_id, "name": name, "content": content}
    )
    sched.touch(run)
    sched.emit(
        "agent.tool_result",
        task_run_id=run["id"],
        task_id=run["task_id"],
        tool_call_id=call_id,
        name=name,
        content=content,
        error=is_error,
    )


def leaf_spec(sched: Scheduler, run: TaskRun) -> dict[str, Any]:
    """The request of a model call, or the rendered task of a tool call."""
    parent_id = run["parent"]
    assert parent_id is not None  # model and tool calls run under their agent
    parent = sched.runs[parent_id]
    if run["type"] == MODEL_CALL:
        task = sched.index.task(parent["path"])
        assert isinstance(task, AgentTask)
        provider = render(
            task.provider.model_dump(mode="json", exclude_none=True),
            sched.variables(parent),
            where=f"task '{task.id}' provider",
        )
        return {
            "provider": provider,
            "messages": parent["agent"]["messages"][: run["upto"]],
            "tools": [
                tool.model_dump(mode="json", exclude_none=True, exclude={"task"})
                for tool in task.tools
            ],
            "temperature": task.temperature,
            "max_tokens": task.max_tokens,
            "stream": task.stream,
        }
    variables = sched.variables(run) | {"args": run["args"]}
    spec = dict(
        render(sched.index.leaf_spec(run["path"]), variables, where=f"tool '{run['task_id']}'")
    )
    if run["type"] == "python":
        spec["kwargs"] = {**(spec.get("kwargs") or {}), **run["args"]}
    return spec


def is_agent_call(run: TaskRun) -> bool:
    return run["type"] == MODEL_CALL or "tool_call_id" in run
