"""Shannon's own Python SDK (``shannon-sdk``, pinned in the test extra), unchanged, against
a real server on loopback: the control calls and every control-state field it reads.

The rest of a Shannon user's session (status, wait, events, stream, submit, approve)
is issue 15's remaining work; these are the calls pausepoint answers in Shannon's
shape today.
"""

from __future__ import annotations

from datetime import datetime

from shannon import AsyncShannonClient

from tests.api.conftest import RunningServer
from tests.api.test_events import start_paused


def shannon(server: RunningServer, role: str = "operator") -> AsyncShannonClient:
    return AsyncShannonClient(base_url=server.base_url, api_key=server.keys[f"acme:{role}"])


async def test_the_sdk_reads_who_paused_when_and_who_cancelled_why(server: RunningServer) -> None:
    async with server.client("acme", "operator") as http:
        task_id = await start_paused(http)  # waiting on its Pause task
    client = shannon(server)
    try:
        state = await client.get_control_state(task_id)
        assert (state.is_paused, state.is_cancelled) == (True, False)
        assert state.paused_by is None and state.paused_at is None  # its own Pause task

        assert await client.pause_task(task_id, reason="hold for review") is True
        state = await client.get_control_state(task_id)
        operator = "key:" + server.keys["acme:operator"].split("_")[1]
        assert state.is_paused and not state.is_cancelled
        assert state.paused_by == operator
        assert isinstance(state.paused_at, datetime) and state.paused_at.tzinfo is not None

        assert await client.cancel(task_id, reason="not needed any more") is True
        state = await client.get_control_state(task_id)
        assert (state.is_paused, state.is_cancelled) == (False, True)
        assert state.cancel_reason == "not needed any more"
        assert state.cancelled_by == operator
        assert state.paused_at is None and state.paused_by is None
    finally:
        await client.close()
