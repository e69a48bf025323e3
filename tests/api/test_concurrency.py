"""50 concurrent conflicting control requests on one execution over real HTTP.

Mixed pause, resume, inject and cancel race on one running execution. The
outcome must be one linearizable history: no 5xx, exactly the accepted
requests in the audit (each applied or rejected, none left pending), never two
pauses applied without a resume between them, nothing but cancel/terminate
applied after the first cancel, and the cancel wins.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

from tests.api.matrix_support import (
    assert_sane,
    big_pool_client,
    gated_server,
    gates,
    start,
    wait_settled,
    wait_started,
    wait_state,
)

MIX = ["pause"] * 15 + ["resume"] * 15 + ["inject"] * 14 + ["cancel"] * 6
BODIES: dict[str, dict[str, Any]] = {
    "pause": {"reason": "race"},
    "resume": {},
    "inject": {"message": "race", "role": "user"},
    "cancel": {"reason": "race"},
}


def check_history(commands: list[dict[str, Any]]) -> None:
    """Replay the applied commands in audit order through the control rules."""
    paused = False
    stopping = False
    for command in commands:
        if command["status"] != "applied":
            continue
        kind = command["kind"]
        where = f"seq {command['seq']} ({kind}) in {[(c['kind'], c['status']) for c in commands]}"
        if stopping:
            assert kind in ("cancel", "terminate"), f"applied after a cancel: {where}"
            continue
        if kind == "pause":
            assert not paused, f"a second pause applied without a resume between: {where}"
            paused = True
        elif kind == "resume":
            assert paused, f"a resume applied with no pause open: {where}"
            paused = False
        elif kind in ("cancel", "terminate"):
            stopping = True


async def test_fifty_conflicting_requests_make_one_linearizable_history(db_path: Path) -> None:
    ops = MIX[:]
    random.Random(20240601).shuffle(ops)
    async with gated_server(db_path) as server, big_pool_client(server) as http:
        key = gates.new_key("race")
        execution_id = await start(http, "slow", {"key": key})
        await wait_started(key)

        replies = await asyncio.gather(
            *(http.post(f"/api/v1/executions/{execution_id}/{op}", json=BODIES[op]) for op in ops)
        )

        accepted: dict[str, str] = {}
        for op, reply in zip(ops, replies, strict=True):
            assert_sane(reply)
            assert reply.status_code in (202, 409), f"{op}: {reply.status_code} {reply.text}"
            if reply.status_code == 202:
                body = reply.json()
                assert body["success"] is True
                accepted[body["command_id"]] = op
            else:
                assert isinstance(reply.json()["detail"], str)
        assert "cancel" in accepted.values(), "no cancel was accepted"

        commands = await wait_settled(http, execution_id)
        assert {c["id"]: c["kind"] for c in commands} == accepted, (
            "the audit must hold exactly the accepted requests"
        )
        assert {c["status"] for c in commands} <= {"applied", "rejected"}
        assert [c["seq"] for c in commands] == list(range(1, len(commands) + 1))
        applied_times = [c["applied_at"] for c in commands if c["status"] == "applied"]
        assert applied_times == sorted(applied_times), "applied out of acceptance order"
        check_history(commands)
        first_cancel = next(c for c in commands if c["kind"] == "cancel")
        assert first_cancel["status"] == "applied", first_cancel

        final = await wait_state(http, execution_id, "CANCELLED")
        assert final["pause_points"] == []
        assert gates.gate(key).finishes == 0
