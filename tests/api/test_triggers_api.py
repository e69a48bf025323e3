"""Triggers over HTTP: list, pause and resume (roles, tenancy, audit), and Kestra's webhooks,
driven by Kestra's own client (kestrapy 2.0.3, unchanged) and by plain HTTP."""

from __future__ import annotations

import httpx

from pausepoint.testing import assert_eventually
from tests.api.conftest import RunningServer
from tests.api.test_kestrapy import kestra, off_loop

NAMESPACE = "api.triggers"
FLOW = f"""
id: hooked
namespace: {NAMESPACE}
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: a-long-secret-key
  - id: nightly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 2 * * *"
tasks:
  - id: echo
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ trigger.body.order ?? 'none' }}}}"
"""


async def put_flow(server: RunningServer) -> None:
    async with server.client("acme", "admin") as admin:
        reply = await admin.put(
            f"/api/v1/flows/{NAMESPACE}/hooked",
            content=FLOW.encode(),
            headers={"Content-Type": "application/x-yaml"},
        )
        assert reply.status_code in (200, 201), reply.text


async def executions_of(server: RunningServer) -> list[str]:
    return [r.id for r in await server.engine.as_org("acme").list_executions(flow_id="hooked")]


async def test_triggers_are_listed_paused_and_resumed_by_operators(server: RunningServer) -> None:
    await put_flow(server)
    async with (
        server.client("acme", "viewer") as viewer,
        server.client("acme", "operator") as operator,
        server.client("globex", "admin") as globex,
    ):
        listed = (await viewer.get(f"/api/v1/flows/{NAMESPACE}/hooked/triggers")).json()
        assert [(t["trigger_id"], t["type"], t["paused"]) for t in listed] == [
            ("hook", "webhook", False),
            ("nightly", "schedule", False),
        ]
        assert listed[1]["next_fire"].endswith("T02:00:00.000Z")
        pause = f"/api/v1/flows/{NAMESPACE}/hooked/triggers/nightly/pause"
        refused = await viewer.post(pause)
        assert refused.status_code == 403
        assert "operator" in refused.json()["detail"]
        assert (await globex.post(pause)).status_code == 404  # another organization's flow
        paused = await operator.post(pause)
        assert paused.status_code == 200, paused.text
        assert paused.json()["paused"] is True
        resume = f"/api/v1/flows/{NAMESPACE}/hooked/triggers/nightly/resume"
        bad = await operator.post(resume, json={"catchUp": "LATER"})
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"] == ["body", "catchUp"]
        resumed = await operator.post(resume, json={"catchUp": "QUEUE"})
        assert resumed.status_code == 200, resumed.text
        assert resumed.json()["paused"] is False
        missing = await operator.post(f"/api/v1/flows/{NAMESPACE}/hooked/triggers/nope/pause")
        assert missing.status_code == 404
        assert "has no trigger 'nope'" in missing.json()["detail"]


async def test_kestras_client_starts_a_flow_from_its_webhook(server: RunningServer) -> None:
    await put_flow(server)
    client = kestra(server)
    started = await off_loop(
        client.executions.trigger_execution_by_get_webhook,
        "acme",
        NAMESPACE,
        "hooked",
        "a-long-secret-key",
    )
    assert (started.namespace, started.flow_id) == (NAMESPACE, "hooked")
    view = await server.engine.as_org("acme").wait(started.id, timeout=20)
    assert view.state == "COMPLETED", view.error
    assert await executions_of(server) == [started.id]


async def test_a_webhook_reads_the_body_and_a_wrong_key_starts_nothing(
    server: RunningServer,
) -> None:
    await put_flow(server)
    async with httpx.AsyncClient(base_url=server.base_url) as anyone:
        reply = await anyone.post(
            f"/api/v1/acme/executions/webhook/{NAMESPACE}/hooked/a-long-secret-key",
            json={"order": 42},
        )
        assert reply.status_code == 200, reply.text
        execution_id = reply.json()["id"]
        for url in (
            f"/api/v1/acme/executions/webhook/{NAMESPACE}/hooked/wrong-key",
            f"/api/v1/globex/executions/webhook/{NAMESPACE}/hooked/a-long-secret-key",
            f"/api/v1/executions/webhook/{NAMESPACE}/hooked/a-long-secret-key",  # default org
            f"/api/v1/acme/executions/webhook/{NAMESPACE}/nope/a-long-secret-key",
        ):
            wrong = await anyone.post(url, json={"order": 1})
            assert wrong.status_code == 404, f"{url}: {wrong.text}"
            assert "message" in wrong.json()  # Kestra's error shape
    engine = server.engine.as_org("acme")

    async def done() -> bool:
        return (await engine.execution(execution_id)).state == "COMPLETED"

    await assert_eventually(done, timeout=20, what="the webhook's execution")
    view = await engine.execution(execution_id)
    assert (view.trigger or {})["body"] == {"order": 42}  # the body's JSON number
    assert view.task_runs[0].outputs == {"value": "42"}  # Kestra's Return renders to text
    assert await executions_of(server) == [execution_id]
