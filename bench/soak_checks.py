"""After the soak's load: drain what is left, then check that nothing was lost.

- every execution the soak started ended, in the state its applied commands call for
  (terminate wins over cancel; otherwise the drain resumed it to COMPLETED);
- the audit of each execution (all of them, or a random sample of ``Plan.audit_cap``)
  holds exactly the commands the soak saw accepted, none still pending, each decided
  as its reply said when the reply already knew;
- a Pause task resumed with typed inputs has them, with their types, as its outputs;
- each event log is gapless, ends with its one terminal event, and has one
  ``context.injected`` per applied inject;
- the server counted no 5xx control reply itself.

Problems are reported through the soak's recorder, like the load's errors.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from http_bench import RawConnection, Server
from soak_report import OPEN_STATES, TERMINAL

from pausepoint.models import TERMINAL_EVENT_TYPES

if TYPE_CHECKING:
    from soak import Soak, Tracked

NAMESPACE = "soak"
DRAIN_INPUTS = {"approved": False, "amount": 0, "note": "drained"}


async def drain(soak: Soak, timeout: float) -> None:
    """Resume every open pause point until every execution has ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = await open_executions(soak)
        if not left:
            return
        for execution_id in left:
            status, view = await soak.api.call("get", "GET", f"/api/v1/executions/{execution_id}")
            if status != 200 or view["state"] != "PAUSED":
                continue
            tracked = soak.tracked.get(execution_id)
            if tracked is None:
                continue  # not the soak's: ``verify`` reports it
            for point in view["pause_points"]:
                body: dict[str, Any] = {"pause_id": point["id"]}
                if point["kind"] == "task":
                    body["inputs"] = DRAIN_INPUTS
                if await soak.control(tracked, "resume", body, kind="drain") == 202 and (
                    point["kind"] == "task" and tracked.inputs is None
                ):
                    tracked.inputs = DRAIN_INPUTS
        await asyncio.sleep(0.3)
    soak.recorder.error(f"executions still open {timeout:.0f} s after the load stopped")


async def open_executions(soak: Soak) -> list[str]:
    states = "&".join(f"state={state}" for state in OPEN_STATES)
    status, page = await soak.api.call(
        "list", "GET", f"/api/v1/executions?namespace={NAMESPACE}&{states}&limit=500"
    )
    return [item["id"] for item in page["items"]] if status == 200 else []


async def final_states(soak: Soak) -> dict[str, str]:
    states: dict[str, str] = {}
    cursor = ""
    while True:
        status, page = await soak.api.call(
            "list", "GET", f"/api/v1/executions?namespace={NAMESPACE}&limit=500{cursor}"
        )
        if status != 200:
            return states
        states.update((item["id"], item["state"]) for item in page["items"])
        if not page["next_cursor"]:
            return states
        cursor = f"&cursor={page['next_cursor']}"


async def verify(soak: Soak) -> dict[str, Any]:
    """Nothing lost: final states, audits, typed inputs. Problems become errors."""
    states = await final_states(soak)
    outcomes: Counter[str] = Counter()
    for tracked in soak.tracked.values():
        state = states.get(tracked.id)
        outcomes[f"{tracked.flow} {state}"] += 1
        if state not in TERMINAL:
            soak.recorder.error(f"{tracked.flow} {tracked.id} ended in {state}, not terminal")
    unknown = set(states) - set(soak.tracked)
    if unknown:
        soak.recorder.error(f"{len(unknown)} executions nobody started: {sorted(unknown)[:5]}")
    audited = list(soak.tracked.values())
    if len(audited) > soak.plan.audit_cap:
        audited = random.Random(soak.plan.seed).sample(audited, soak.plan.audit_cap)
    checked = Counter[str]()
    semaphore = asyncio.Semaphore(soak.plan.connections // 2)

    async def check(tracked: Tracked) -> None:
        async with semaphore:
            await check_execution(soak, tracked, states.get(tracked.id), checked)

    await asyncio.gather(*(check(tracked) for tracked in audited))
    return {
        "executions": len(soak.tracked),
        "final_states": dict(sorted(outcomes.items())),
        "executions_audited": len(audited),
        "commands_accepted": sum(len(t.accepted) for t in soak.tracked.values()),
        "commands_checked": checked["commands"],
        "commands_applied": checked["applied"],
        "commands_refused_when_applied": checked["rejected"],
        "typed_inputs_checked": checked["inputs"],
        "event_logs_checked": checked["event_logs"],
    }


async def check_execution(
    soak: Soak, tracked: Tracked, state: str | None, checked: Counter[str]
) -> None:
    status, audit = await soak.api.call("audit", "GET", f"/api/v1/executions/{tracked.id}/audit")
    if status != 200:
        return
    recorded = {command["id"]: command for command in audit}
    if set(recorded) != set(tracked.accepted):
        missing = set(tracked.accepted) - set(recorded)
        extra = set(recorded) - set(tracked.accepted)
        soak.recorder.error(
            f"audit of {tracked.id}: accepted but missing {sorted(missing)}, "
            f"recorded but never accepted {sorted(extra)}"
        )
    for command_id, (kind, applied) in tracked.accepted.items():
        command = recorded.get(command_id)
        if command is None:
            continue
        checked["commands"] += 1
        checked[command["status"]] += 1
        if command["kind"] != kind or command["status"] not in ("applied", "rejected"):
            soak.recorder.error(f"audit of {tracked.id}: {kind} {command_id} is {command}")
        elif applied is not None and applied != (command["status"] == "applied"):
            soak.recorder.error(
                f"audit of {tracked.id}: {kind} {command_id} replied applied={applied} "
                f"but is {command['status']}"
            )
    if state != (expected := expected_state(audit)):
        soak.recorder.error(f"{tracked.flow} {tracked.id} ended {state}, expected {expected}")
    if tracked.flow == "approval" and state == "COMPLETED" and tracked.inputs is not None:
        await check_inputs(soak, tracked)
        checked["inputs"] += 1
    injects = sum(1 for c in audit if c["kind"] == "inject" and c["status"] == "applied")
    await check_events(soak, tracked, injects)
    checked["event_logs"] += 1


async def check_events(soak: Soak, tracked: Tracked, injects: int) -> None:
    """The event log: gapless from 1, one terminal event and it is the last (ARCHITECTURE
    §4: the stream of an execution ends after it), one ``context.injected`` per applied
    inject (applied exactly once)."""
    status, page = await soak.api.call(
        "events", "GET", f"/api/v1/executions/{tracked.id}/events?limit=1000"
    )
    if status != 200:
        return
    events = page["items"]
    what = f"events of {tracked.flow} {tracked.id}"
    if [e["seq"] for e in events] != list(range(1, len(events) + 1)):
        soak.recorder.error(f"{what}: sequence {[e['seq'] for e in events]} has gaps")
    ends = [n for n, e in enumerate(events) if e["type"] in TERMINAL_EVENT_TYPES]
    if len(ends) != 1 or ends[0] != len(events) - 1:
        tail = [f"{e['seq']} {e['type']}" for e in events[-4:]]
        soak.recorder.error(f"{what}: the terminal event is not the one last event: ...{tail}")
    injected = sum(1 for e in events if e["type"] == "context.injected")
    if injected != injects:
        soak.recorder.error(f"{what}: {injected} context.injected for {injects} applied injects")


async def check_inputs(soak: Soak, tracked: Tracked) -> None:
    """The Pause task's onResume outputs are the inputs sent, typed."""
    status, view = await soak.api.call("get", "GET", f"/api/v1/executions/{tracked.id}")
    if status != 200:
        return
    runs = [run for run in view["task_runs"] if run["task_id"] == "approve"]
    got = (runs[-1].get("outputs") or {}).get("onResume") if runs else None
    wanted = tracked.inputs or {}
    if not isinstance(got, dict) or {k: (v, type(v)) for k, v in got.items()} != {
        k: (v, type(v)) for k, v in wanted.items()
    }:
        soak.recorder.error(f"approval {tracked.id}: resumed with {wanted}, recorded {got}")


def expected_state(audit: list[dict[str, Any]]) -> str:
    """The final state an execution's applied commands call for (the drain resumes the rest)."""
    applied = {command["kind"] for command in audit if command["status"] == "applied"}
    if "terminate" in applied:
        return "TERMINATED"
    if "cancel" in applied:
        return "CANCELLED"
    return "COMPLETED"


async def server_side_errors(server: Server) -> int:
    """5xx control replies the server itself counted (``result="error"`` in /metrics)."""
    connection = await RawConnection.open(server.base, server.key)
    try:
        status, text = await connection.exchange("GET", "/metrics")
    finally:
        connection.close()
    total = 0
    for line in text.decode().splitlines():
        if line.startswith("pausepoint_control_requests_total{") and 'result="error"' in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total if status == 200 else -1
