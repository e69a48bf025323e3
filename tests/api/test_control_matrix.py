"""Every (execution state x control operation) over real HTTP (ARCHITECTURE.md §2-§3).

Each cell starts a fresh execution, brings it to the state with real tasks
(``python`` tasks that wait on gates the test holds), sends the operation and
checks the status code and body: 202/200 with ``success: true`` and the state
after, or 409 whose ``detail`` names the state. Bad bodies are 422 naming the
field. Never a 5xx, never a 2xx with ``success: false``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from pausepoint.service.engine import Engine
from pausepoint.store.sqlite_notify import notify_directory
from pausepoint.testing import fast_settings
from tests.api.matrix_support import (
    NAMESPACE,
    assert_sane,
    audit,
    gated_server,
    gates,
    start,
    state_of,
    wait_started,
    wait_state,
)

OPS = ("pause", "resume", "cancel", "terminate", "inject")


@dataclass(frozen=True)
class Accepted:
    status: int
    states: tuple[str, ...]  # the state the reply may report
    settles: tuple[str, ...] = ()  # where the execution ends up (empty: not checked)


@dataclass(frozen=True)
class Refused:
    says: str  # a fragment of the 409 detail that names the state


def terminal_row(state: str) -> dict[str, Accepted | Refused]:
    name = state.lower().replace("_", " ")
    return {op: Refused(f"cannot {op} {name} execution") for op in OPS}


TABLE: dict[str, dict[str, Accepted | Refused]] = {
    "QUEUED": {
        "pause": Accepted(202, ("PAUSED",), ("PAUSED",)),
        "resume": Refused("it is QUEUED, not paused"),
        "cancel": Accepted(202, ("CANCELLED",), ("CANCELLED",)),
        "terminate": Accepted(200, ("TERMINATED",), ("TERMINATED",)),
        "inject": Accepted(202, ("QUEUED", "RUNNING", "COMPLETED"), ("COMPLETED",)),
    },
    "RUNNING": {
        "pause": Accepted(202, ("PAUSING",), ("PAUSING",)),
        "resume": Refused("it is RUNNING, not paused"),
        "cancel": Accepted(202, ("CANCELLING", "CANCELLED"), ("CANCELLED",)),
        "terminate": Accepted(200, ("TERMINATED",), ("TERMINATED",)),
        "inject": Accepted(202, ("RUNNING",), ("RUNNING",)),
    },
    "PAUSING": {
        "pause": Refused("is already pausing"),
        "resume": Accepted(202, ("RUNNING",), ("RUNNING",)),
        "cancel": Accepted(202, ("CANCELLING", "CANCELLED"), ("CANCELLED",)),
        "terminate": Accepted(200, ("TERMINATED",), ("TERMINATED",)),
        "inject": Accepted(202, ("PAUSING",), ("PAUSING",)),
    },
    "PAUSED_MANUAL": {
        "pause": Refused("is already paused"),
        "resume": Accepted(202, ("RUNNING", "COMPLETED"), ("COMPLETED",)),
        "cancel": Accepted(202, ("CANCELLED",), ("CANCELLED",)),
        "terminate": Accepted(200, ("TERMINATED",), ("TERMINATED",)),
        "inject": Accepted(202, ("PAUSED",), ("PAUSED",)),
    },
    "PAUSED_TASK": {
        # A manual pause on top of a Pause task is a second hold: accepted, still PAUSED.
        "pause": Accepted(202, ("PAUSED",), ("PAUSED",)),
        "resume": Accepted(202, ("RUNNING", "COMPLETED"), ("COMPLETED",)),
        "cancel": Accepted(202, ("CANCELLED",), ("CANCELLED",)),
        "terminate": Accepted(200, ("TERMINATED",), ("TERMINATED",)),
        "inject": Accepted(202, ("PAUSED",), ("PAUSED",)),
    },
    "CANCELLING": {
        "pause": Refused("being cancelled"),
        "resume": Refused("being cancelled"),
        "cancel": Accepted(202, ("CANCELLING",), ("CANCELLING",)),
        "terminate": Accepted(200, ("TERMINATED",), ("TERMINATED",)),
        "inject": Refused("being cancelled"),
    },
    **{
        state: terminal_row(state)
        for state in ("COMPLETED", "WARNING", "FAILED", "CANCELLED", "TERMINATED", "TIMED_OUT")
    },
}

BODIES: dict[str, dict[str, Any]] = {
    "pause": {"reason": "matrix"},
    "resume": {},
    "cancel": {"reason": "matrix"},
    "terminate": {"reason": "matrix"},
    "inject": {"message": "hello from the matrix", "role": "user"},
}


# -- reaching each state -------------------------------------------------------------


Reach = Callable[[httpx.AsyncClient], Awaitable[str]]


async def reach_running(http: httpx.AsyncClient) -> str:
    key = gates.new_key("running")
    execution_id = await start(http, "slow", {"key": key})
    await wait_started(key)
    await wait_state(http, execution_id, "RUNNING")
    return execution_id


async def _pausing(http: httpx.AsyncClient) -> tuple[str, str]:
    key = gates.new_key("pausing")
    execution_id = await start(http, "slow", {"key": key})
    await wait_started(key)
    reply = await http.post(f"/api/v1/executions/{execution_id}/pause", json={"reason": "hold"})
    assert reply.status_code == 202, reply.text
    assert reply.json()["state"] == "PAUSING"
    return execution_id, key


async def reach_pausing(http: httpx.AsyncClient) -> str:
    execution_id, _ = await _pausing(http)
    return execution_id


async def reach_paused_manual(http: httpx.AsyncClient) -> str:
    execution_id, key = await _pausing(http)
    gates.gate(key).release.set()
    await wait_state(http, execution_id, "PAUSED")
    return execution_id


async def reach_paused_task(http: httpx.AsyncClient) -> str:
    execution_id = await start(http, "approval", namespace="api.tests")
    point = await wait_state(http, execution_id, "PAUSED")
    assert [p["kind"] for p in point["pause_points"]] == ["task"]
    return execution_id


async def reach_cancelling(http: httpx.AsyncClient) -> str:
    key = gates.new_key("cancelling")
    execution_id = await start(http, "slow_finally", {"key": key})
    await wait_started(key)
    reply = await http.post(f"/api/v1/executions/{execution_id}/cancel", json={})
    assert reply.status_code == 202, reply.text
    await wait_started(f"{key}-cleanup")
    await wait_state(http, execution_id, "CANCELLING")
    return execution_id


async def reach_completed(http: httpx.AsyncClient) -> str:
    execution_id = await start(http, "quick")
    await wait_state(http, execution_id, "COMPLETED")
    return execution_id


async def reach_failed(http: httpx.AsyncClient) -> str:
    execution_id = await start(http, "failing")
    await wait_state(http, execution_id, "FAILED")
    return execution_id


async def reach_cancelled(http: httpx.AsyncClient) -> str:
    execution_id = await reach_running(http)
    reply = await http.post(f"/api/v1/executions/{execution_id}/cancel", json={})
    assert reply.status_code == 202, reply.text
    await wait_state(http, execution_id, "CANCELLED")
    return execution_id


async def reach_terminated(http: httpx.AsyncClient) -> str:
    execution_id = await reach_running(http)
    reply = await http.post(
        f"/api/v1/executions/{execution_id}/terminate", json={"reason": "setup"}
    )
    assert reply.status_code == 200, reply.text
    await wait_state(http, execution_id, "TERMINATED")
    return execution_id


async def reach_timed_out(http: httpx.AsyncClient) -> str:
    execution_id = await start(http, "timing_out", {"key": gates.new_key("timeout")})
    await wait_state(http, execution_id, "TIMED_OUT")
    return execution_id


async def reach_warning(http: httpx.AsyncClient) -> str:
    execution_id = await start(http, "warns")
    await wait_state(http, execution_id, "WARNING")
    return execution_id


REACH: dict[str, Reach] = {
    "RUNNING": reach_running,
    "PAUSING": reach_pausing,
    "PAUSED_MANUAL": reach_paused_manual,
    "PAUSED_TASK": reach_paused_task,
    "CANCELLING": reach_cancelling,
    "COMPLETED": reach_completed,
    "WARNING": reach_warning,
    "FAILED": reach_failed,
    "CANCELLED": reach_cancelled,
    "TERMINATED": reach_terminated,
    "TIMED_OUT": reach_timed_out,
}


# -- one cell ---------------------------------------------------------------------------


def body_for(state: str, op: str) -> dict[str, Any]:
    if op == "resume" and state == "PAUSED_TASK":
        return {"inputs": {"approved": True, "note": "ok"}}
    return BODIES[op]


async def check_cell(http: httpx.AsyncClient, state: str, op: str, execution_id: str) -> None:
    expected = TABLE[state][op]
    before = await audit(http, execution_id)
    state_before = (await state_of(http, execution_id))["state"]
    reply = await http.post(f"/api/v1/executions/{execution_id}/{op}", json=body_for(state, op))
    where = f"{state} x {op}: {reply.status_code} {reply.text}"
    assert_sane(reply)
    body = reply.json()
    if isinstance(expected, Refused):
        assert reply.status_code == 409, where
        assert set(body) >= {"detail"}, where
        assert isinstance(body["detail"], str), where
        assert expected.says.lower() in body["detail"].lower(), where
        assert execution_id in body["detail"], where
        after = await audit(http, execution_id)
        assert len(after) == len(before), f"{where}: a refused command was recorded: {after}"
        assert (await state_of(http, execution_id))["state"] == state_before, where
        return
    assert reply.status_code == expected.status, where
    assert body["success"] is True, where
    assert body["execution_id"] == execution_id, where
    assert body["state"] in expected.states, where
    if op == "terminate":
        assert body["workflow_id"] == execution_id, where
        assert body["terminated_at"], where
    else:
        assert body["applied"] is True, where
        assert body["replayed"] is False, where
    commands = await audit(http, execution_id)
    assert len(commands) == len(before) + 1, where
    assert commands[-1]["kind"] == op, where
    assert commands[-1]["status"] == "applied", where
    assert commands[-1]["id"] == body["command_id"], where
    if expected.settles:
        await wait_state(http, execution_id, *expected.settles)


@pytest.mark.parametrize("state", list(REACH), ids=str.lower)
async def test_every_operation_in_each_state(db_path: Path, state: str) -> None:
    async with gated_server(db_path) as server, server.client("acme", "operator") as http:

        async def cell(op: str) -> None:
            await check_cell(http, state, op, await REACH[state](http))

        await asyncio.gather(*(cell(op) for op in OPS))


QUEUED_CASES = OPS


@pytest.mark.parametrize("op", QUEUED_CASES)
async def test_operation_on_a_queued_execution(db_path: Path, op: str) -> None:
    # QUEUED lasts until a process picks the execution up: a client-only engine
    # records it, and the server's poll interval is long enough that only the
    # control request itself brings it in. Processes sharing the file tell each other
    # of new work at once: the server's socket is taken away before the side engine
    # looks for listeners, so that it hears of this one only through the request.
    async with gated_server(db_path, poll_interval=30.0) as server:
        for listener in notify_directory(db_path).iterdir():
            listener.unlink()
        side = Engine(fast_settings(db_path), run_executions=False)
        await side.start()
        try:
            async with server.client("acme", "operator") as http:
                view = await side.as_org("acme").start_execution(NAMESPACE, "quick")
                assert (await state_of(http, view.id))["state"] == "QUEUED"
                await check_cell(http, "QUEUED", op, view.id)
                if op in ("pause", "cancel", "terminate"):
                    detail = (await http.get(f"/api/v1/executions/{view.id}")).json()
                    assert detail["task_runs"] == [], f"a task started after {op} while QUEUED"
        finally:
            await side.stop()


# -- finer points ---------------------------------------------------------------------


async def test_unknown_execution_is_404_for_every_operation(db_path: Path) -> None:
    async with gated_server(db_path) as server, server.client("acme", "operator") as http:
        unknown = uuid.uuid4().hex
        for op in OPS:
            reply = await http.post(f"/api/v1/executions/{unknown}/{op}", json=BODIES[op])
            assert reply.status_code == 404, (op, reply.text)
            assert unknown in reply.json()["detail"]
            assert "not found" in reply.json()["detail"]


async def test_resume_needs_a_pause_id_when_a_pause_task_and_a_manual_pause_are_open(
    db_path: Path,
) -> None:
    async with gated_server(db_path) as server, server.client("acme", "operator") as http:
        execution_id = await reach_paused_task(http)
        held = await http.post(f"/api/v1/executions/{execution_id}/pause", json={})
        assert held.status_code == 202, held.text
        points = (await state_of(http, execution_id))["pause_points"]
        assert sorted(p["kind"] for p in points) == ["manual", "task"]

        ambiguous = await http.post(
            f"/api/v1/executions/{execution_id}/resume", json={"inputs": {"approved": True}}
        )
        assert ambiguous.status_code == 422, ambiguous.text
        assert ambiguous.json()["detail"][0]["loc"] == ["body", "pause_id"]

        stale = await http.post(
            f"/api/v1/executions/{execution_id}/resume", json={"pause_id": "no-such-pause"}
        )
        assert stale.status_code == 409, stale.text
        assert "no-such-pause" in stale.json()["detail"]

        task_point = next(p["id"] for p in points if p["kind"] == "task")
        manual_point = next(p["id"] for p in points if p["kind"] == "manual")
        first = await http.post(
            f"/api/v1/executions/{execution_id}/resume",
            json={"pause_id": task_point, "inputs": {"approved": True}},
        )
        assert first.status_code == 202, first.text
        assert first.json()["state"] == "PAUSED"  # the manual hold still holds it
        second = await http.post(
            f"/api/v1/executions/{execution_id}/resume", json={"pause_id": manual_point}
        )
        assert second.status_code == 202, second.text
        await wait_state(http, execution_id, "COMPLETED")


def assert_field_error(reply: httpx.Response, loc: list[str]) -> None:
    assert reply.status_code == 422, reply.text
    detail = reply.json()["detail"]
    assert isinstance(detail, list) and detail, reply.text
    for error in detail:
        assert set(error) >= {"loc", "msg", "type"}, reply.text
    assert loc in [error["loc"] for error in detail], reply.text


async def test_bad_bodies_are_422_naming_the_field_and_change_nothing(db_path: Path) -> None:
    async with gated_server(db_path) as server, server.client("acme", "operator") as http:
        running = await reach_running(http)
        paused = await reach_paused_task(http)
        url = "/api/v1/executions/{}/{}".format

        assert_field_error(await http.post(url(running, "terminate"), json={}), ["body", "reason"])
        assert_field_error(
            await http.post(url(running, "terminate"), json={"reason": ""}), ["body", "reason"]
        )
        assert_field_error(
            await http.post(url(running, "terminate"), json={"reason": "x" * 501}),
            ["body", "reason"],
        )
        assert_field_error(
            await http.post(url(running, "inject"), json={"message": ""}), ["body", "message"]
        )
        assert_field_error(
            await http.post(url(running, "inject"), json={"message": "   "}), ["body", "message"]
        )
        assert_field_error(await http.post(url(running, "inject"), json={}), ["body", "message"])
        assert_field_error(
            await http.post(url(running, "inject"), json={"message": "hi", "role": "admin"}),
            ["body", "role"],
        )
        assert_field_error(
            await http.post(url(running, "pause"), json={"reason": "x" * 501}), ["body", "reason"]
        )
        assert_field_error(
            await http.post(url(running, "cancel"), json={"because": "typo"}),
            ["body", "because"],
        )
        malformed = await http.post(
            url(running, "pause"),
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        )
        assert malformed.status_code == 422, malformed.text

        assert_field_error(
            await http.post(url(paused, "resume"), json={"inputs": {"approved": "maybe"}}),
            ["body", "inputs", "approved"],
        )
        assert_field_error(
            await http.post(url(paused, "resume"), json={"inputs": {}}),
            ["body", "inputs", "approved"],
        )
        assert_field_error(
            await http.post(url(paused, "resume"), json={"inputs": {"approved": True, "x": 1}}),
            ["body", "inputs", "x"],
        )
        assert_field_error(
            await http.post(url(paused, "resume/validate"), json={"inputs": {"approved": 7}}),
            ["body", "inputs", "approved"],
        )
        dry_run = await http.post(
            url(paused, "resume/validate"), json={"inputs": {"approved": "true"}}
        )
        assert dry_run.status_code == 200, dry_run.text
        assert dry_run.json()["inputs"]["approved"] is True

        for execution_id, state in ((running, "RUNNING"), (paused, "PAUSED")):
            assert (await state_of(http, execution_id))["state"] == state
            assert await audit(http, execution_id) == []
