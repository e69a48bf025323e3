"""``Idempotency-Key`` over real HTTP: a retried request gets the first reply, once.

Same key and body: the first reply again (one execution, one command in the
audit). Same key, another body or path: 422 naming the header. Keys belong to
an organization: another organization's identical key is a new request.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx

from pausepoint.service import plane
from pausepoint.service.operations import StartRequest
from pausepoint.service.requests import PauseRequest
from pausepoint.store.access import ABANDONED_CLAIM_SECONDS, IdempotencyRecord
from tests.api.matrix_support import (
    assert_sane,
    audit,
    big_pool_client,
    gated_server,
    gates,
    start,
    wait_settled,
    wait_started,
)


def key() -> dict[str, str]:
    return {"Idempotency-Key": f"idem-{uuid.uuid4().hex}"}


def start_body(label: str) -> dict[str, object]:
    return {"namespace": "api.tests", "flow_id": "approval", "labels": {"run": label}}


async def executions_labelled(http: httpx.AsyncClient, label: str) -> list[str]:
    reply = await http.get("/api/v1/executions", params={"label": f"run:{label}", "limit": 500})
    assert reply.status_code == 200, reply.text
    return [item["id"] for item in reply.json()["items"]]


def assert_names_the_header(reply: httpx.Response) -> None:
    assert reply.status_code == 422, reply.text
    locs = [error["loc"] for error in reply.json()["detail"]]
    assert ["header", "Idempotency-Key"] in locs, reply.text


async def running(http: httpx.AsyncClient) -> str:
    name = gates.new_key("idem")
    execution_id = await start(http, "slow", {"key": name})
    await wait_started(name)
    return execution_id


async def test_start_with_the_same_key_and_body_replays_the_first_reply(db_path: Path) -> None:
    async with gated_server(db_path) as server, server.client("acme", "operator") as http:
        headers, label = key(), uuid.uuid4().hex
        first = await http.post("/api/v1/executions", json=start_body(label), headers=headers)
        again = await http.post("/api/v1/executions", json=start_body(label), headers=headers)
        # The same JSON written differently is the same body.
        reordered = await http.post(
            "/api/v1/executions",
            content=b'{"labels": {"run": "%s"}, "flow_id": "approval", "namespace": "api.tests"}'
            % label.encode(),
            headers={**headers, "Content-Type": "application/json"},
        )
        assert first.status_code == 201, first.text
        for replay in (again, reordered):
            assert replay.status_code == 201, replay.text
            assert replay.json() == first.json()
            assert replay.headers.get("idempotent-replayed") == "true"
        assert await executions_labelled(http, label) == [first.json()["id"]]

        other_body = await http.post(
            "/api/v1/executions", json=start_body(uuid.uuid4().hex), headers=headers
        )
        assert_names_the_header(other_body)
        assert await executions_labelled(http, label) == [first.json()["id"]]


async def test_concurrent_starts_with_one_key_make_one_execution(db_path: Path) -> None:
    async with gated_server(db_path) as server, big_pool_client(server) as http:
        headers, label = key(), uuid.uuid4().hex
        replies = await asyncio.gather(
            *(
                http.post("/api/v1/executions", json=start_body(label), headers=headers)
                for _ in range(10)
            )
        )
        for reply in replies:
            assert_sane(reply)
        assert {r.status_code for r in replies} == {201}, [r.text for r in replies]
        made = await executions_labelled(http, label)
        assert len(made) == 1, f"one Idempotency-Key started {len(made)} executions"
        assert {r.json()["id"] for r in replies} == set(made)


async def test_control_with_the_same_key_and_body_is_one_command(db_path: Path) -> None:
    async with gated_server(db_path) as server, server.client("acme", "operator") as http:
        execution_id = await running(http)
        headers = key()
        url = f"/api/v1/executions/{execution_id}/pause"
        first = await http.post(url, json={"reason": "once"}, headers=headers)
        again = await http.post(url, json={"reason": "once"}, headers=headers)
        assert first.status_code == 202, first.text
        assert again.status_code == 202, again.text
        assert again.json() == first.json()
        commands = await audit(http, execution_id)
        assert [(c["kind"], c["idempotency_key"]) for c in commands] == [
            ("pause", headers["Idempotency-Key"])
        ]

        assert_names_the_header(await http.post(url, json={"reason": "twice"}, headers=headers))
        assert_names_the_header(
            await http.post(f"/api/v1/executions/{execution_id}/cancel", json={}, headers=headers)
        )
        other = await running(http)
        assert_names_the_header(
            await http.post(f"/api/v1/executions/{other}/pause", json={}, headers=headers)
        )
        assert len(await audit(http, execution_id)) == 1
        assert await audit(http, other) == []

        terminate = f"/api/v1/executions/{other}/terminate"
        headers = key()
        stopped = await http.post(terminate, json={"reason": "done"}, headers=headers)
        replayed = await http.post(terminate, json={"reason": "done"}, headers=headers)
        assert stopped.status_code == replayed.status_code == 200, replayed.text
        assert replayed.json() == stopped.json()
        assert [c["kind"] for c in await audit(http, other)] == ["terminate"]


async def test_concurrent_control_requests_with_one_key_are_one_command(db_path: Path) -> None:
    async with gated_server(db_path) as server, big_pool_client(server) as http:
        execution_id = await running(http)
        headers = key()
        replies = await asyncio.gather(
            *(
                http.post(
                    f"/api/v1/executions/{execution_id}/inject",
                    json={"message": "once"},
                    headers=headers,
                )
                for _ in range(10)
            )
        )
        for reply in replies:
            assert_sane(reply)
        assert {r.status_code for r in replies} == {202}, [r.text for r in replies]
        assert len({r.json()["command_id"] for r in replies}) == 1
        commands = await wait_settled(http, execution_id)
        assert [c["kind"] for c in commands] == ["inject"]


async def test_keys_belong_to_one_organization(db_path: Path) -> None:
    async with (
        gated_server(db_path) as server,
        server.client("acme", "operator") as acme,
        server.client("globex", "operator") as globex,
    ):
        headers, label = key(), uuid.uuid4().hex
        ours = await acme.post("/api/v1/executions", json=start_body(label), headers=headers)
        theirs = await globex.post("/api/v1/executions", json=start_body(label), headers=headers)
        assert ours.status_code == theirs.status_code == 201, theirs.text
        assert theirs.headers.get("idempotent-replayed") is None
        assert ours.json()["id"] != theirs.json()["id"]
        assert await executions_labelled(acme, label) == [ours.json()["id"]]
        assert await executions_labelled(globex, label) == [theirs.json()["id"]]

        # The same key with a different body in another org is no conflict either.
        acme_exec = await running(acme)
        globex_exec = await running(globex)
        control = key()
        paused = await acme.post(
            f"/api/v1/executions/{acme_exec}/pause", json={"reason": "a"}, headers=control
        )
        injected = await globex.post(
            f"/api/v1/executions/{globex_exec}/inject", json={"message": "b"}, headers=control
        )
        assert paused.status_code == 202, paused.text
        assert injected.status_code == 202, injected.text
        assert [c["kind"] for c in await audit(acme, acme_exec)] == ["pause"]
        assert [c["kind"] for c in await audit(globex, globex_exec)] == ["inject"]


async def test_a_retry_takes_over_the_key_of_a_server_that_died_holding_it(
    db_path: Path,
) -> None:
    """A server killed mid-request leaves its key reserved and unanswered. The client's
    retry must not be told "still in progress" forever: once the reservation is
    abandoned, the retry goes ahead, and the command the dead server accepted comes
    back as the same command."""
    async with gated_server(db_path) as server, server.client("acme", "operator") as http:
        execution_id = await running(http)
        engine = server.engine.as_org("acme")
        idempotency_key = f"idem-{uuid.uuid4().hex}"
        path = f"/api/v1/executions/{execution_id}/pause"
        body = {"reason": "before the crash"}
        accepted = await engine.control(
            PauseRequest(
                execution_id=execution_id,
                reason=body["reason"],
                idempotency_key=idempotency_key,
                actor="the server that died",
                wait=False,
            )
        )
        same = PauseRequest(execution_id=execution_id, reason=body["reason"])

        def reservation(age: float) -> IdempotencyRecord:
            return plane.reservation("acme", idempotency_key, same, engine.clock() - age)

        assert await engine.store.claim_idempotency(reservation(1.0)) is None
        held = await engine.store.claim_idempotency(reservation(0.0))
        assert held is not None and held.status_code == 0, "a live holder's key was taken over"
        await engine.store.release_idempotency("acme", idempotency_key)
        assert (
            await engine.store.claim_idempotency(reservation(ABANDONED_CLAIM_SECONDS + 60)) is None
        )
        retry = await http.post(path, json=body, headers={"Idempotency-Key": idempotency_key})
        assert retry.status_code == 202, retry.text
        assert retry.json()["command_id"] == accepted.command_id
        commands = await audit(http, execution_id)
        assert [(c["kind"], c["id"]) for c in commands] == [("pause", accepted.command_id)]
        again = await http.post(path, json=body, headers={"Idempotency-Key": idempotency_key})
        assert again.json() == retry.json()
        assert again.headers.get("Idempotent-Replayed") == "true"


async def test_a_start_retried_after_its_server_died_makes_no_second_execution(
    db_path: Path,
) -> None:
    """The dead server created the execution but never answered; once the retry takes
    its key over, the start finds that execution instead of creating another."""
    async with gated_server(db_path) as server, server.client("acme", "operator") as http:
        engine = server.engine.as_org("acme")
        idempotency_key = f"idem-{uuid.uuid4().hex}"
        body = start_body(idempotency_key)
        first = await engine.start_execution(
            "api.tests",
            "approval",
            labels={"run": idempotency_key},
            idempotency_key=idempotency_key,
        )
        abandoned = engine.clock() - ABANDONED_CLAIM_SECONDS - 60
        same = StartRequest(
            namespace="api.tests", flow_id="approval", labels={"run": idempotency_key}
        )
        held = plane.reservation("acme", idempotency_key, same, abandoned)
        assert await engine.store.claim_idempotency(held) is None

        retry = await http.post(
            "/api/v1/executions", json=body, headers={"Idempotency-Key": idempotency_key}
        )
        assert retry.status_code == 201, retry.text
        assert retry.json()["id"] == first.id
        assert await executions_labelled(http, idempotency_key) == [first.id]
        # The same key in another organization is another execution.
        other = await server.engine.as_org("globex").start_execution(
            "api.tests", "approval", idempotency_key=idempotency_key
        )
        assert other.id != first.id
