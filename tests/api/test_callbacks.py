"""Callback tokens over HTTP: a machine completes a Pause task's wait with one call.

A real server on loopback and a real SQLite file; the token reaches the flow
as ``{{ callbacks.<task> }}`` or is minted through the API.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from pausepoint.models import ExecutionView
from pausepoint.service.callbacks import CallbackToken, sign_callback
from tests.api.conftest import RunningServer

FLOW = """
id: payment
namespace: callbacks.tests
tasks:
  - id: announce
    type: return
    format: "{{ callbacks.settled }}"
  - id: gate
    type: pause
  - id: settled
    type: pause
    onResume:
      - id: status
        type: SELECT
        values: [paid, refused]
      - id: amount
        type: INT
  - id: done
    type: return
    format: "{{ outputs.settled.onResume.status }} {{ outputs.settled.onResume.amount }}"
"""

BEATING = """
id: beating
namespace: callbacks.tests
tasks:
  - id: work
    type: pause
    heartbeatTimeout: PT2S
"""


async def start(server: RunningServer, flow: str) -> ExecutionView:
    engine = server.engine.as_org("acme")
    record = await engine.put_flow(flow)
    async with server.client() as client:
        started = await client.post(
            "/api/v1/executions", json={"namespace": record.namespace, "flow_id": record.flow_id}
        )
        assert started.status_code == 201, started.text
    return await engine.wait(started.json()["id"], until=lambda v: v.state == "PAUSED", timeout=30)


def announced(view: ExecutionView) -> str:
    run = next(r for r in view.task_runs if r.task_id == "announce")
    url: str = (run.outputs or {})["value"]
    return url


async def resume(server: RunningServer, execution_id: str, pause_id: str) -> None:
    async with server.client() as client:
        response = await client.post(
            f"/api/v1/executions/{execution_id}/resume", json={"pause_id": pause_id}
        )
        assert response.status_code == 202, response.text


async def complete(server: RunningServer, url: str, body: Any) -> httpx.Response:
    async with httpx.AsyncClient() as anonymous:  # the token is the credential
        path = url.split("/api/v1/callbacks/", 1)[1]
        return await anonymous.post(f"{server.base_url}/api/v1/callbacks/{path}", json=body)


async def test_a_completion_that_comes_early_is_kept_until_the_task_waits(
    server: RunningServer,
) -> None:
    view = await start(server, FLOW)
    url = announced(view)
    assert "/api/v1/callbacks/" in url
    first = await complete(server, url, {"status": "paid", "amount": "12"})
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "kept"
    assert first.json()["inputs"] == {"status": "paid", "amount": 12}
    engine = server.engine.as_org("acme")
    still = await engine.execution(view.id)
    assert still.state == "PAUSED"  # at the gate: the completion waits for its task
    await resume(server, view.id, still.pause_points[0].id)
    ended = await engine.wait(view.id, timeout=30)
    assert ended.state == "COMPLETED", ended.error
    done = next(r for r in ended.task_runs if r.task_id == "done")
    assert (done.outputs or {})["value"] == "paid 12"
    settled = next(r for r in ended.task_runs if r.task_id == "settled")
    assert (settled.outputs or {})["resumed"]["by"] == "callback:settled"


async def test_a_second_completion_returns_the_first_result(server: RunningServer) -> None:
    view = await start(server, FLOW)
    engine = server.engine.as_org("acme")
    await resume(server, view.id, view.pause_points[0].id)
    waiting = await engine.wait(
        view.id,
        until=lambda v: any(p.task_id == "settled" for p in v.pause_points),
        timeout=30,
    )
    url = announced(waiting)
    first = await complete(server, url, {"status": "refused", "amount": 0})
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "applied"
    assert first.json()["replayed"] is False
    again = await complete(server, url, {"status": "paid", "amount": 99})
    assert again.status_code == 200
    assert again.json()["replayed"] is True
    assert again.json()["inputs"] == {"status": "refused", "amount": 0}
    ended = await engine.wait(view.id, timeout=30)
    done = next(r for r in ended.task_runs if r.task_id == "done")
    assert (done.outputs or {})["value"] == "refused 0"


async def test_bad_inputs_name_the_field_and_record_nothing(server: RunningServer) -> None:
    view = await start(server, FLOW)
    url = announced(view)
    bad = await complete(server, url, {"status": "maybe", "amount": 1})
    assert bad.status_code == 422, bad.text
    assert any(error["loc"] == ["body", "status"] for error in bad.json()["detail"])
    not_an_object = await complete(server, url, [1, 2])
    assert not_an_object.status_code == 422
    good = await complete(server, url, {"status": "paid", "amount": 1})
    assert good.json()["status"] == "kept"  # the refused ones left nothing behind


async def test_a_completion_after_the_wait_ended_is_refused(server: RunningServer) -> None:
    view = await start(server, FLOW)
    engine = server.engine.as_org("acme")
    await resume(server, view.id, view.pause_points[0].id)
    waiting = await engine.wait(
        view.id,
        until=lambda v: any(p.task_id == "settled" for p in v.pause_points),
        timeout=30,
    )
    (point,) = waiting.pause_points
    await engine.resume(view.id, pause_id=point.id, inputs={"status": "paid", "amount": 5})
    await engine.wait(view.id, timeout=30)
    late = await complete(server, announced(waiting), {"status": "refused", "amount": 0})
    assert late.status_code == 409, late.text
    assert "already ended" in late.text or "completed" in late.text


async def test_forged_and_expired_tokens_are_refused(server: RunningServer) -> None:
    view = await start(server, FLOW)
    url = announced(view)
    body, mac = url.rsplit("/", 1)[1].split(".")
    forged = await complete(server, f"x/api/v1/callbacks/{body}.{mac[::-1]}", {})
    assert forged.status_code == 403
    expired = sign_callback(
        CallbackToken("acme", view.id, "settled", 1), server.engine.callback_key
    )
    old = await complete(server, f"x/api/v1/callbacks/{expired}", {"status": "paid"})
    assert old.status_code == 410
    elsewhere = sign_callback(
        CallbackToken("globex", view.id, "settled", 4_000_000_000), server.engine.callback_key
    )
    other = await complete(server, f"x/api/v1/callbacks/{elsewhere}", {"status": "paid"})
    assert other.status_code == 404
    state = await server.engine.as_org("acme").state(view.id)
    assert "callbacks" not in state.model_dump_json() or '"kept"' not in state.model_dump_json()


async def test_heartbeats_keep_a_wait_alive_and_their_absence_fails_it(
    server: RunningServer,
) -> None:
    view = await start(server, BEATING)
    async with server.client(role="operator") as operator:
        minted = await operator.post(
            f"/api/v1/executions/{view.id}/callbacks", json={"task_id": "work"}
        )
        assert minted.status_code == 200, minted.text
        token = minted.json()["token"]
        missing = await operator.post(
            f"/api/v1/executions/{view.id}/callbacks", json={"task_id": "nope"}
        )
        assert missing.status_code == 404
    engine = server.engine.as_org("acme")
    async with httpx.AsyncClient(base_url=server.base_url) as anonymous:
        for _ in range(10):  # 2.5 s of heartbeats, more than the 2 s heartbeatTimeout
            beat = await anonymous.post(f"/api/v1/callbacks/{token}/heartbeat")
            assert beat.status_code == 202, beat.text
            await asyncio.sleep(0.25)
        assert (await engine.execution(view.id)).state == "PAUSED"
    ended = await engine.wait(view.id, timeout=30)  # no more heartbeats
    assert ended.state == "FAILED"
    assert "no heartbeat" in (ended.error or "")
