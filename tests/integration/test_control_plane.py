"""The control plane's chain (``Engine.call``): authorize → idempotency → audit → implementation.

Every outside caller's operation passes it, so each step's rule is tested here
once, on a real engine and SQLite file, for operations of several kinds.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from pausepoint import Engine
from pausepoint.errors import Conflict, Forbidden, InvalidInput, NotFound
from pausepoint.service.auth import Principal
from pausepoint.service.operations import (
    BulkRequest,
    GetStateRequest,
    ListSecretsRequest,
    PutSecretRequest,
    StartRequest,
)
from pausepoint.service.requests import PauseRequest, ResumeRequest

FLOW = """
id: gate
namespace: plane.tests
tasks:
  - id: wait
    type: pause
  - id: done
    type: return
    format: done
"""

VIEWER = Principal("acme", "viewer", "key:viewer")
OPERATOR = Principal("acme", "operator", "key:operator")
ADMIN = Principal("acme", "admin", "key:admin")
OTHER_ORG = Principal("globex", "admin", "key:globex")


@pytest.fixture
async def acme(engine: Engine) -> Engine:
    scoped = engine.as_org("acme")
    await scoped.put_flow(FLOW)
    return scoped


async def paused(engine: Engine) -> str:
    start = StartRequest(namespace="plane.tests", flow_id="gate")
    view = (await engine.call(start, OPERATOR)).value
    await engine.wait(view.id, until=lambda v: v.state == "PAUSED", timeout=10)
    return view.id


@pytest.mark.parametrize(
    ("principal", "operation"),
    [
        (VIEWER, StartRequest(namespace="plane.tests", flow_id="gate")),
        (VIEWER, PauseRequest(execution_id="any")),
        (OPERATOR, PutSecretRequest(secret_name="token", value="s3cret")),
        (OPERATOR, ListSecretsRequest()),
    ],
    ids=["viewer-start", "viewer-pause", "operator-put-secret", "operator-list-secrets"],
)
async def test_a_role_too_low_is_refused_before_anything_runs(
    acme: Engine, principal: Principal, operation: object
) -> None:
    with pytest.raises(Forbidden, match="needs the"):
        await acme.call(operation, principal)  # type: ignore[arg-type]
    assert await acme.list_executions() == []
    assert await acme.secret_names() == []


async def test_another_organizations_execution_is_an_unknown_one(acme: Engine) -> None:
    execution_id = await paused(acme)
    with pytest.raises(NotFound):
        await acme.call(GetStateRequest(execution_id=execution_id), OTHER_ORG)
    with pytest.raises(NotFound):
        await acme.call(PauseRequest(execution_id=execution_id), OTHER_ORG)
    assert (await acme.call(GetStateRequest(execution_id=execution_id), VIEWER)).value


async def test_a_repeated_key_returns_the_first_result_once(acme: Engine) -> None:
    execution_id = await paused(acme)
    resume = ResumeRequest(execution_id=execution_id, reason="go")
    first = await acme.call(resume, OPERATOR, idempotency_key="k1")
    again = await acme.call(resume, OPERATOR, idempotency_key="k1")
    assert not first.replayed and again.replayed
    assert again.value == first.value
    assert [c.kind for c in await acme.commands(execution_id)] == ["resume"]


async def test_concurrent_twins_with_one_key_make_one_execution(acme: Engine) -> None:
    start = StartRequest(namespace="plane.tests", flow_id="gate", labels={"run": "twins"})
    replies = await asyncio.gather(
        *(acme.call(start, OPERATOR, idempotency_key="start-1") for _ in range(5))
    )
    assert len({reply.value.id for reply in replies}) == 1
    assert sum(not reply.replayed for reply in replies) == 1
    assert len(await acme.list_executions(labels={"run": "twins"})) == 1


async def test_a_key_reused_for_another_operation_is_refused_naming_the_header(
    acme: Engine,
) -> None:
    execution_id = await paused(acme)
    await acme.call(PauseRequest(execution_id=execution_id), OPERATOR, idempotency_key="k2")
    with pytest.raises(InvalidInput) as refused:
        await acme.call(
            PauseRequest(execution_id=execution_id, reason="other"),
            OPERATOR,
            idempotency_key="k2",
        )
    assert [e.loc for e in refused.value.errors] == [("header", "Idempotency-Key")]


async def test_a_failed_call_frees_its_key_for_a_retry(acme: Engine) -> None:
    execution_id = await paused(acme)
    wrong = ResumeRequest(execution_id=execution_id, pause_id="no-such-pause")
    with pytest.raises(Conflict):
        await acme.call(wrong, OPERATOR, idempotency_key="k3")
    corrected = await acme.call(
        ResumeRequest(execution_id=execution_id), OPERATOR, idempotency_key="k3"
    )
    assert not corrected.replayed and corrected.value.applied
    assert [c.kind for c in await acme.commands(execution_id)] == ["resume"]


async def test_a_call_cancelled_while_claiming_its_key_frees_it_for_a_retry(
    acme: Engine,
) -> None:
    """What a Temporal activity re-run after a missed heartbeat does: the first attempt
    is cancelled wherever it is, the retry calls again with the same key. Cancelled at
    every moment of the first few loop turns, some land while the key is being claimed;
    each retry gets the key at once (before the plane's wait for an answer from the
    first holder would give up) and one execution per key is started."""
    for turns in range(12):
        key = f"cancelled-{turns}"
        start = StartRequest(namespace="plane.tests", flow_id="gate", labels={"key": key})
        first = asyncio.ensure_future(acme.call(start, OPERATOR, idempotency_key=key))
        for _ in range(turns):
            await asyncio.sleep(0)
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        async with asyncio.timeout(acme.settings.command_wait_timeout):
            retried = await acme.call(start, OPERATOR, idempotency_key=key)
        assert [v.id for v in await acme.list_executions(labels={"key": key})] == [retried.value.id]


async def test_commands_record_the_caller_and_changes_are_audited(
    acme: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    execution_id = await paused(acme)
    with caplog.at_level(logging.INFO, logger="pausepoint.audit"):
        await acme.call(PauseRequest(execution_id=execution_id), OPERATOR, request_id="req-7")
        await acme.call(PutSecretRequest(secret_name="token", value="s3cret"), ADMIN)
        await acme.call(GetStateRequest(execution_id=execution_id), VIEWER)
    [command] = await acme.commands(execution_id)
    assert (command.actor, command.request_id) == ("key:operator", "req-7")
    audited = [(r.operation, r.actor, r.outcome) for r in caplog.records]  # type: ignore[attr-defined]
    assert audited == [("Pause", "key:operator", "ok"), ("PutSecret", "key:admin", "ok")]
    assert "s3cret" not in caplog.text


async def test_bulk_goes_through_the_chain_for_its_caller(acme: Engine) -> None:
    ids = [await paused(acme) for _ in range(2)]
    operation = BulkRequest(op="cancel", ids=tuple(ids))
    with pytest.raises(Forbidden):
        await acme.call(operation, VIEWER)
    reply = (await acme.call(operation, OPERATOR)).value
    assert [(item.execution_id, item.status) for item in reply.results] == [
        (ids[0], 202),
        (ids[1], 202),
    ]
    commands = [c for i in ids for c in await acme.commands(i)]
    assert {c.actor for c in commands} == {"key:operator"}
