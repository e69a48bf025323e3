"""Kestra's own trigger flows (tests/kestra/valids, unchanged) to the outcomes Kestra's tests
state: webhooks over real HTTP (a key-less webhook, inputs, wait and outputs, a when
condition, a signature), and Flow triggers that listen to several flows (dependsOn,
preconditions, MultipleCondition), to a when condition and to states before the end.

Kestra's tests: ExecutionControllerTest / ExecutionControllerRunnerTest (webhooks),
WebhookSignatureTest, MultipleConditionTriggerCaseTest and FlowTriggerCaseTest.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from pausepoint.config import Settings
from pausepoint.errors import Conflict, FlowError, Unauthorized
from pausepoint.flow import load_flow
from pausepoint.models import ExecutionView
from pausepoint.service.engine import Engine
from pausepoint.service.triggers import CatchUp, webhook_key
from pausepoint.testing import assert_eventually, fast_settings
from tests.api.conftest import RunningServer, running_server

VALIDS = Path(__file__).resolve().parents[1] / "kestra" / "valids"
TESTS = "io.kestra.tests"
TIMEOUT = 20.0


# -- webhooks, over HTTP --------------------------------------------------------------------


@pytest.fixture
async def server(db_path: Path) -> AsyncIterator[RunningServer]:
    async with running_server(db_path) as running:
        yield running


async def put_valid(server: RunningServer, *names: str) -> None:
    for name in names:
        await server.engine.as_org("acme").put_flow_file(VALIDS / name)


def hook(flow_id: str, key: str) -> str:
    return f"/api/v1/acme/executions/webhook/{TESTS}/{flow_id}/{key}"


async def ended(server: RunningServer, execution_id: str) -> ExecutionView:
    return await server.engine.as_org("acme").wait(execution_id, timeout=TIMEOUT)


async def executions(server: RunningServer, flow_id: str) -> list[str]:
    return [r.id for r in await server.engine.as_org("acme").list_executions(flow_id=flow_id)]


async def test_a_webhook_without_a_key_answers_on_the_key_derived_for_it(
    server: RunningServer,
) -> None:
    """webhook.yaml has no key (Kestra's first Webhook generated one): pausepoint derives
    one from the installation's secret, the same in every process and after a restart."""
    await put_valid(server, "webhook.yaml")
    key = webhook_key(server.engine.as_org("acme"), TESTS, "webhook", "webhook")
    assert len(key) == 32
    async with httpx.AsyncClient(base_url=server.base_url, timeout=TIMEOUT) as anyone:
        reply = await anyone.post(
            hook("webhook", key) + "?name=john&age=12", json={"a": 1, "b": True}
        )
        assert reply.status_code == 200, reply.text
        for wrong in ("a-secret-key", key[:-1], "webhook"):
            refused = await anyone.post(hook("webhook", wrong), json={"a": 1})
            assert refused.status_code == 404, refused.text
    view = await ended(server, reply.json()["id"])
    assert view.state == "COMPLETED", view.error
    assert view.trigger is not None
    assert view.trigger["body"] == {"a": 1, "b": True}
    assert view.trigger["parameters"] == {"name": "john", "age": "12"}
    printed = (view.task_runs[0].outputs or {})["value"]  # format: "{{ trigger | json }}"
    assert '"body":{"a":1,"b":true}' in printed
    assert await executions(server, "webhook") == [view.id]
    # Another organization's flow of the same name has another key.
    assert webhook_key(server.engine.as_org("globex"), TESTS, "webhook", "webhook") != key


async def test_webhook_inputs_are_rendered_from_the_request(server: RunningServer) -> None:
    """ExecutionControllerTest.webhookWithInputs: inputs: {body: "{{ trigger.body }}"}."""
    await put_valid(server, "webhook-inputs.yaml")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=TIMEOUT) as anyone:
        reply = await anyone.post(hook("webhook-inputs", "webhookKey"), json={"hello": "world"})
    assert reply.status_code == 200, reply.text
    view = await ended(server, reply.json()["id"])
    assert view.state == "COMPLETED", view.error
    assert view.inputs == {"body": '{"hello":"world"}'}  # rendered to text, as Kestra's
    assert view.task_runs[0].outputs == {"value": '{"hello":"world"}'}


async def test_a_webhook_that_waits_answers_when_the_execution_ends(server: RunningServer) -> None:
    """ExecutionControllerRunnerTest.shouldWaitForWebhookAndReturnOutput: the answer is the
    execution as it ended, SUCCESS, with the flow's outputs."""
    await put_valid(server, "webhook-wait.yaml")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=TIMEOUT) as anyone:
        reply = await anyone.get(hook("webhook-wait", "webhook"))
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert answer["state"]["current"] == "SUCCESS"
    assert answer["outputs"] == {"output": "output"}
    assert answer["flowId"] == "webhook-wait"


async def test_a_webhook_returns_the_flows_outputs_as_its_body(server: RunningServer) -> None:
    """ExecutionRunnerControllerTest.webhookWithOutputs: key "{{ flow.id }}", wait and
    outputsAsResponse: the body is the outputs."""
    await put_valid(server, "webhook-outputs.yaml")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=TIMEOUT) as anyone:
        reply = await anyone.get(hook("webhook-outputs", "webhook-outputs"))
        assert reply.status_code == 200, reply.text
        outputs = reply.json()
        assert outputs["status"] == "ok"
        assert outputs["executionId"] in await executions(server, "webhook-outputs")
        # The key is the rendered template, not its text.
        literal = await anyone.get(hook("webhook-outputs", "{{ flow.id }}"))
        assert literal.status_code == 404


async def test_a_webhook_when_condition_starts_only_what_it_accepts(
    server: RunningServer,
) -> None:
    """ExecutionControllerTest.webhookWithCondition: {"hello": "world"} starts the flow,
    {"hello": "webhook"} is answered 204 with no body and starts nothing."""
    await put_valid(server, "webhook-with-condition.yaml")
    url = hook("webhook-with-condition", "webhookKey")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=TIMEOUT) as anyone:
        accepted = await anyone.post(url, json={"hello": "world"})
        assert accepted.status_code == 200, accepted.text
        declined = await anyone.post(url, json={"hello": "webhook"})
        assert declined.status_code == 204
        assert declined.content == b""
        text = await anyone.post(url, content=b"not json")  # trigger.body.hello is undefined
        assert text.status_code == 422, text.text
        assert "when" in text.json()["message"]
    assert await executions(server, "webhook-with-condition") == [accepted.json()["id"]]


BODY = '{ "count": 1.00, "message": "café", "ok": true }\n'
SIGNATURE = "sha256=0d541f9ce82c02ab31853d0d99f7989d4dd1e178e1fa0643c4221648013cb22c"


async def test_a_signed_webhook_checks_the_raw_body(server: RunningServer) -> None:
    """WebhookSignatureTest: the HMAC-SHA256 of the raw bytes under vars.signingSecret,
    prefixed sha256=. A missing, wrong or re-encoded signature is a 401 and starts
    nothing; multipart is refused (it cannot be signed)."""
    await put_valid(server, "webhook-signature.yaml")
    expected = hmac.new(b"test-secret", BODY.encode(), hashlib.sha256).hexdigest()
    assert f"sha256={expected}" == SIGNATURE  # Kestra's test vector
    url = hook("webhook-signature", "testkey")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=TIMEOUT) as anyone:
        for headers, content in (
            ({}, BODY),
            ({"X-Hub-Signature-256": ""}, BODY),
            ({"X-Hub-Signature-256": "sha256=bad"}, BODY),
            ({"X-Hub-Signature-256": "sha256=" + "0" * 64}, BODY),
            ({"X-Hub-Signature-256": expected}, BODY),  # without its prefix
            # The same values, encoded otherwise: not the bytes that were signed.
            ({"X-Hub-Signature-256": SIGNATURE}, '{"count":1.0,"message":"café","ok":true}'),
        ):
            refused = await anyone.post(url, content=content.encode(), headers=headers)
            assert refused.status_code == 401, (headers, refused.text)
            assert "signature" in refused.json()["message"]
        multipart = await anyone.post(
            url, files={"field": ("f.txt", b"value")}, headers={"X-Hub-Signature-256": SIGNATURE}
        )
        assert multipart.status_code == 401
        assert await executions(server, "webhook-signature") == []
        # A wrong key is still a 404, whatever the signature.
        wrong = await anyone.post(
            hook("webhook-signature", "nope"),
            content=BODY.encode(),
            headers={"x-hub-signature-256": SIGNATURE},
        )
        assert wrong.status_code == 404
        signed = await anyone.post(
            url, content=BODY.encode(), headers={"x-hub-signature-256": SIGNATURE}
        )
    assert signed.status_code == 200, signed.text
    view = await ended(server, signed.json()["id"])
    assert view.state == "COMPLETED", view.error
    assert view.trigger is not None
    assert view.trigger["body"] == {"count": 1.0, "message": "café", "ok": True}
    assert await executions(server, "webhook-signature") == [view.id]


CHECKED = f"""
id: checked
namespace: {TESTS}
inputs:
  - id: count
    type: INT
tasks:
  - id: maybe
    type: io.kestra.plugin.core.execution.Fail
    condition: "{{{{ inputs.count > 1 }}}}"
outputs:
  - id: count
    type: INT
    value: "{{{{ inputs.count }}}}"
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: "{{{{ secret('HOOK_KEY') }}}}"
    wait: true
    inputs:
      count: "{{{{ trigger.body.count }}}}"
"""


async def test_a_webhook_answers_bad_input_with_a_4xx_naming_it(server: RunningServer) -> None:
    """A key from a secret; an input that is not an INT is a 422 naming it (nothing
    starts); a waiting webhook whose execution fails answers 500 with the execution, as
    Kestra's does; a paused trigger is a 404 like a wrong key."""
    engine = server.engine.as_org("acme")
    await engine.put_secret("HOOK_KEY", "from-a-secret")
    await engine.put_flow(CHECKED)
    url = hook("checked", "from-a-secret")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=TIMEOUT) as anyone:
        bad = await anyone.post(url, json={"count": "many"})
        assert bad.status_code == 422, bad.text
        assert "count" in bad.json()["message"]
        assert await executions(server, "checked") == []
        ok = await anyone.post(url, json={"count": 1})
        assert ok.status_code == 200, ok.text
        assert (ok.json()["state"]["current"], ok.json()["outputs"]) == ("SUCCESS", {"count": 1})
        failed = await anyone.post(url, json={"count": 2})
        assert failed.status_code == 500
        assert failed.json()["state"]["current"] == "FAILED"
        assert (await anyone.post(hook("checked", "{{ secret('HOOK_KEY') }}"))).status_code == 404
        await engine.pause_trigger(TESTS, "checked", "hook")
        paused = await anyone.post(url, json={"count": 1})
        assert paused.status_code == 404
    assert len(await executions(server, "checked")) == 2


@pytest.mark.parametrize(
    ("trigger", "problem"),
    [
        (
            "type: io.kestra.plugin.core.trigger.Flow\n    dependsOn: [{namespace: a, flowId: b},"
            " {namespace: a, flowId: c}]\n    window: {every: soon}",
            "triggers[0].window.every: 'soon' is not an ISO-8601 duration",
        ),
        (
            "type: io.kestra.plugin.core.trigger.Flow\n    preconditions:\n      id: p\n"
            "      where: [{id: w, filters: [{field: FLOW_ID, type: LIKE, value: x}]}]",
            "triggers[0].preconditions.where[0].filters[0].type: 'LIKE' is not allowed",
        ),
        (
            "type: io.kestra.plugin.core.trigger.Flow\n    preconditions:\n      id: p\n"
            "      flows: [{flowId: b}]",
            "triggers[0].preconditions.flows: each of the flows needs its namespace",
        ),
        (
            "type: io.kestra.plugin.core.trigger.Flow\n    states: [DONE]",
            "triggers[0].states: unknown state 'DONE'",
        ),
        (
            "type: io.kestra.plugin.core.trigger.Flow\n    conditions:\n"
            "      - type: io.kestra.plugin.core.condition.MultipleCondition\n        id: m\n"
            "        conditions:\n          inner:\n"
            "            type: io.kestra.plugin.core.condition.MultipleCondition",
            "triggers[0].conditions[0].conditions.inner.type: unknown or unsupported condition",
        ),
        (
            "type: io.kestra.plugin.core.trigger.Webhook\n    key: k\n    signature: {header: X}",
            "triggers[0].signature.secret: required property is missing",
        ),
        (
            "type: io.kestra.plugin.core.trigger.Webhook\n    key: k\n    responseCode: 99",
            "triggers[0].responseCode: 99 is not an HTTP status code",
        ),
        (
            "type: io.kestra.plugin.core.trigger.Webhook\n    key: k\n    when: '{{ body.x ?'",
            "triggers[0].when: invalid template",
        ),
    ],
)
def test_a_wrong_trigger_is_refused_where_it_is_written(trigger: str, problem: str) -> None:
    source = f"id: wrong\nnamespace: t\ntriggers:\n  - id: t\n    {trigger}\ntasks:\n" + (
        "  - id: log\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n"
    )
    with pytest.raises(FlowError) as refused:
        load_flow(source, source="flow.yaml")
    assert problem in refused.value.message, refused.value.message


async def test_the_engine_refuses_a_webhook_whose_when_is_false(engine: Engine) -> None:
    await engine.put_flow_file(VALIDS / "webhook-with-condition.yaml")
    with pytest.raises(Conflict):
        await engine.fire_webhook(
            TESTS, "webhook-with-condition", "webhookKey", body={"hello": "webhook"}
        )
    with pytest.raises(Unauthorized):  # no raw body to check a signature against
        await engine.put_flow_file(VALIDS / "webhook-signature.yaml")
        await engine.fire_webhook(TESTS, "webhook-signature", "testkey", body={})
    assert await engine.list_executions() == []


# -- Flow triggers ---------------------------------------------------------------------------


class Clock:
    """A clock the test moves: each execution ends at its own moment."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC).timestamp()

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float = 1.0) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def settings(db_path: Path) -> Settings:
    return fast_settings(db_path)


@pytest.fixture
async def engine(settings: Settings, clock: Clock) -> AsyncIterator[Engine]:
    async with Engine(settings, clock=clock) as running:
        yield running


async def load(engine: Engine, *names: str) -> None:
    for name in names:
        await engine.put_flow_file(VALIDS / name)
    await engine.fire_triggers()  # the first pass marks where history ends


async def run(engine: Engine, clock: Clock, namespace: str, flow_id: str) -> ExecutionView:
    clock.tick()
    started = await engine.start_execution(namespace, flow_id)
    view = await engine.wait(started.id, timeout=TIMEOUT)
    assert view.state == "COMPLETED", view.error
    return view


async def started_by(engine: Engine, flow_id: str) -> list[ExecutionView]:
    records = await engine.list_executions(flow_id=flow_id, limit=100)
    return [await engine.execution(record.id) for record in reversed(records)]


async def test_a_flow_trigger_when_condition_reads_the_executions_labels(
    engine: Engine, clock: Clock
) -> None:
    """MultipleConditionTriggerCaseTest.flowTriggerWhenCondition: flow-a carries the label
    source: when-test, so the listener fires once, and only once."""
    namespace = "io.kestra.tests.trigger.when.condition"
    await load(
        engine,
        "flow-trigger-when-condition-flow-a.yaml",
        "flow-trigger-when-condition-flow-listen.yaml",
        "flow-trigger-depends-on-flow-b.yaml",  # another namespace, no label: never
    )
    upstream = await run(engine, clock, namespace, "flow-trigger-when-condition-flow-a")
    await run(engine, clock, "io.kestra.tests.trigger.depends.on", "flow-trigger-depends-on-flow-b")
    assert await engine.fire_triggers() == 1
    assert await engine.fire_triggers() == 0
    (listener,) = await started_by(engine, "flow-trigger-when-condition-flow-listen")
    assert listener.trigger is not None
    assert listener.trigger["executionId"] == upstream.id


DEPENDS_ON = "io.kestra.tests.trigger.depends.on"


async def test_a_depends_on_of_two_flows_fires_once_both_ended(
    engine: Engine, clock: Clock
) -> None:
    """MultipleConditionTriggerCaseTest.flowTriggerDependsOn: flow-a (with its label), flow-a
    again and flow-b fire the listener once; the window then starts again (no window:
    each firing resets it), so flow-b alone fires nothing more."""
    await load(
        engine,
        "flow-trigger-depends-on-flow-a.yaml",
        "flow-trigger-depends-on-flow-b.yaml",
        "flow-trigger-depends-on-flow-listen.yaml",
    )
    await run(engine, clock, DEPENDS_ON, "flow-trigger-depends-on-flow-a")
    assert await engine.fire_triggers() == 0  # flow-b has not ended yet
    await run(engine, clock, DEPENDS_ON, "flow-trigger-depends-on-flow-a")
    last = await run(engine, clock, DEPENDS_ON, "flow-trigger-depends-on-flow-b")
    assert await engine.fire_triggers() == 1
    assert await engine.fire_triggers() == 0
    (listener,) = await started_by(engine, "flow-trigger-depends-on-flow-listen")
    assert (await engine.wait(listener.id, timeout=TIMEOUT)).state == "COMPLETED"
    assert listener.trigger is not None
    assert (listener.trigger["executionId"], listener.trigger["state"]) == (last.id, "SUCCESS")
    assert listener.trigger["outputs"]["some"] == "value"  # flow-b's, the one that completed it
    await run(engine, clock, DEPENDS_ON, "flow-trigger-depends-on-flow-b")
    assert await engine.fire_triggers() == 0
    await run(engine, clock, DEPENDS_ON, "flow-trigger-depends-on-flow-a")
    assert await engine.fire_triggers() == 1


async def test_depends_on_window_fire_once(engine: Engine, clock: Clock) -> None:
    """MultipleConditionTriggerCaseTest.flowTriggerDependsOnFireOnceTrue: with fireOnce the
    window is cleared when it fires; flow-a alone afterwards does not fire it again."""
    namespace = "io.kestra.tests.trigger.fire.once.true"
    await load(
        engine,
        "flow-trigger-fire-once-true-flow-a.yaml",
        "flow-trigger-fire-once-true-flow-b.yaml",
        "flow-trigger-fire-once-true-flow-listen.yaml",
    )
    await run(engine, clock, namespace, "flow-trigger-fire-once-true-flow-a")
    await run(engine, clock, namespace, "flow-trigger-fire-once-true-flow-b")
    assert await engine.fire_triggers() == 1
    await run(engine, clock, namespace, "flow-trigger-fire-once-true-flow-a")
    assert await engine.fire_triggers() == 0
    assert len(await started_by(engine, "flow-trigger-fire-once-true-flow-listen")) == 1


async def test_a_window_without_fire_once_fires_on_each_matching_end(
    engine: Engine, clock: Clock
) -> None:
    """Kestra's window.fireOnce: false (the default once a window is given) keeps what was
    met: within the window each execution that meets a condition again fires again."""
    namespace = "io.kestra.tests.trigger.fire.once.true"
    source = (VALIDS / "flow-trigger-fire-once-true-flow-listen.yaml").read_text()
    await load(
        engine,
        "flow-trigger-fire-once-true-flow-a.yaml",
        "flow-trigger-fire-once-true-flow-b.yaml",
    )
    await engine.put_flow(source.replace("fireOnce: true", "every: PT1H"))
    await run(engine, clock, namespace, "flow-trigger-fire-once-true-flow-a")
    await run(engine, clock, namespace, "flow-trigger-fire-once-true-flow-b")
    await run(engine, clock, namespace, "flow-trigger-fire-once-true-flow-a")
    assert await engine.fire_triggers() == 2
    clock.tick(3600)  # the next hour is another window: flow-b must end in it again
    await run(engine, clock, namespace, "flow-trigger-fire-once-true-flow-a")
    assert await engine.fire_triggers() == 0


STABLE = "io.kestra.tests.trigger.stable.condition.id"
INVERTED = """
id: flow-trigger-stable-condition-id-flow-listen
namespace: io.kestra.tests.trigger.stable.condition.id

triggers:
  - id: flow
    type: io.kestra.plugin.core.trigger.Flow
    dependsOn:
      - namespace: io.kestra.tests.trigger.stable.condition.id
        flowId: flow-trigger-stable-condition-id-flow-b
        states: [SUCCESS]
      - namespace: io.kestra.tests.trigger.stable.condition.id
        flowId: flow-trigger-stable-condition-id-flow-a
        states: [SUCCESS]

tasks:
  - id: only
    type: io.kestra.plugin.core.debug.Return
    format: "It works"
"""


async def test_reordering_depends_on_keeps_what_was_met(engine: Engine, clock: Clock) -> None:
    """FlowTriggerCaseTest.triggerDependsOnWithStableConditionId: flow-a ends, the listener
    is saved with its dependsOn inverted (the source Kestra's test saves), flow-b ends:
    the listener fires, flow-a's end still counted."""
    await load(
        engine,
        "flow-trigger-stable-condition-id-flow-a.yaml",
        "flow-trigger-stable-condition-id-flow-b.yaml",
        "flow-trigger-stable-condition-id-flow-listen.yaml",
    )
    await run(engine, clock, STABLE, "flow-trigger-stable-condition-id-flow-a")
    assert await engine.fire_triggers() == 0
    await engine.put_flow(INVERTED)
    await run(engine, clock, STABLE, "flow-trigger-stable-condition-id-flow-b")
    assert await engine.fire_triggers() == 1


async def test_changing_what_depends_on_waits_for_starts_the_window_again(
    engine: Engine, clock: Clock
) -> None:
    """A dependsOn changed in substance (not only reordered) counts what ends after the
    change: what was met before belonged to the old definition."""
    await load(
        engine,
        "flow-trigger-stable-condition-id-flow-a.yaml",
        "flow-trigger-stable-condition-id-flow-b.yaml",
        "flow-trigger-stable-condition-id-flow-listen.yaml",
    )
    await run(engine, clock, STABLE, "flow-trigger-stable-condition-id-flow-a")
    assert await engine.fire_triggers() == 0
    clock.tick()
    await engine.put_flow(INVERTED.replace("states: [SUCCESS]", "states: [SUCCESS, WARNING]"))
    await run(engine, clock, STABLE, "flow-trigger-stable-condition-id-flow-b")
    assert await engine.fire_triggers() == 0
    await run(engine, clock, STABLE, "flow-trigger-stable-condition-id-flow-a")
    assert await engine.fire_triggers() == 1


PRECONDITIONS = "io.kestra.tests.trigger.preconditions"
PRECONDITION_FLOWS = (
    "flow-trigger-preconditions-flow-a.yaml",
    "flow-trigger-preconditions-flow-b.yaml",
    "flow-trigger-preconditions-flow-listen.yaml",
)


async def test_preconditions_fire_with_the_last_executions_outputs(
    engine: Engine, clock: Clock
) -> None:
    """MultipleConditionTriggerCaseTest.flowTriggerPreconditions: flow-a, flow-a, flow-b
    meet the flows and the where filters (flow-a's label through an EXPRESSION); the
    listener's trigger.outputs has flow-b's output."""
    await load(engine, *PRECONDITION_FLOWS)
    await run(engine, clock, PRECONDITIONS, "flow-trigger-preconditions-flow-a")
    await run(engine, clock, PRECONDITIONS, "flow-trigger-preconditions-flow-a")
    await run(engine, clock, PRECONDITIONS, "flow-trigger-preconditions-flow-b")
    assert await engine.fire_triggers() == 1
    (listener,) = await started_by(engine, "flow-trigger-preconditions-flow-listen")
    assert listener.trigger is not None
    assert listener.trigger["outputs"]["some"] == "value"
    assert (await engine.wait(listener.id, timeout=TIMEOUT)).state == "COMPLETED"


async def test_preconditions_merge_the_outputs_of_every_flow_that_met_them(
    engine: Engine, clock: Clock
) -> None:
    """MultipleConditionTriggerCaseTest.flowTriggerPreconditionsMergeOutputs: flow-b, then
    flow-a: flow-b's outputs are under its namespace and flow id."""
    await load(engine, *PRECONDITION_FLOWS)
    await run(engine, clock, PRECONDITIONS, "flow-trigger-preconditions-flow-b")
    assert await engine.fire_triggers() == 0
    await run(engine, clock, PRECONDITIONS, "flow-trigger-preconditions-flow-a")
    assert await engine.fire_triggers() == 1
    (listener,) = await started_by(engine, "flow-trigger-preconditions-flow-listen")
    assert listener.trigger is not None
    merged = listener.trigger["outputs"][PRECONDITIONS]["flow-trigger-preconditions-flow-b"]
    assert merged == {"some": "value"}


async def test_a_window_survives_a_restart_and_never_fires_twice(
    settings: Settings, clock: Clock
) -> None:
    """The window's progress is the store's: flow-a ends under one process, flow-b under the
    next, and the listener fires; a third process replaying the same ends fires nothing."""
    async with Engine(settings, clock=clock) as first:
        await load(first, *PRECONDITION_FLOWS)
        await run(first, clock, PRECONDITIONS, "flow-trigger-preconditions-flow-a")
        assert await first.fire_triggers() == 0
    async with Engine(settings, clock=clock) as second:
        await run(second, clock, PRECONDITIONS, "flow-trigger-preconditions-flow-b")
        assert await second.fire_triggers() == 1
    async with Engine(settings, clock=clock) as third:
        assert await third.fire_triggers() == 0
        await run(third, clock, PRECONDITIONS, "flow-trigger-preconditions-flow-b")
        assert await third.fire_triggers() == 0  # flow-a must end again first
        assert len(await started_by(third, "flow-trigger-preconditions-flow-listen")) == 1


async def test_the_process_taking_the_lease_over_knows_the_window(
    db_path: Path, clock: Clock
) -> None:
    settings = fast_settings(db_path, lease_ttl=300.0)
    async with Engine(settings, clock=clock) as first, Engine(settings, clock=clock) as second:
        await load(first, *PRECONDITION_FLOWS)
        await run(first, clock, PRECONDITIONS, "flow-trigger-preconditions-flow-a")
        assert await first.fire_triggers() == 0
        assert await second.fire_triggers() == 0  # the first holds the lease
        clock.tick(settings.lease_ttl + 1)  # the first stops; its lease runs out
        await run(second, clock, PRECONDITIONS, "flow-trigger-preconditions-flow-b")
        assert await second.fire_triggers() == 1
        assert await first.fire_triggers() == 0


MULTIPLE = "trigger-multiplecondition"


async def test_kestras_older_multiple_condition(engine: Engine, clock: Clock) -> None:
    """MultipleConditionTriggerCaseTest.trigger: the listener waits for flow-a and flow-b of
    io.kestra.tests (its conditions name that namespace) within a day. The copies of
    flow-a and flow-b are in io.kestra.tests.trigger (Kestra moved them later): they do
    not meet it; the same flows saved in io.kestra.tests do."""
    await load(
        engine,
        f"{MULTIPLE}-listener.yaml",
        f"{MULTIPLE}-flow-a.yaml",
        f"{MULTIPLE}-flow-b.yaml",
    )
    await run(engine, clock, "io.kestra.tests.trigger", f"{MULTIPLE}-flow-a")
    await run(engine, clock, "io.kestra.tests.trigger", f"{MULTIPLE}-flow-b")
    assert await engine.fire_triggers() == 0
    for name in ("a", "b"):
        source = (VALIDS / f"{MULTIPLE}-flow-{name}.yaml").read_text()
        await engine.put_flow(
            source.replace("namespace: io.kestra.tests.trigger", f"namespace: {TESTS}")
        )
    await run(engine, clock, TESTS, f"{MULTIPLE}-flow-a")
    assert await engine.fire_triggers() == 0
    last = await run(engine, clock, TESTS, f"{MULTIPLE}-flow-b")
    assert await engine.fire_triggers() == 1
    (listener,) = await started_by(engine, f"{MULTIPLE}-listener")
    assert listener.trigger is not None
    assert (listener.trigger["executionId"], listener.trigger["flowId"]) == (
        last.id,
        f"{MULTIPLE}-flow-b",
    )
    await run(engine, clock, TESTS, f"{MULTIPLE}-flow-a")
    assert await engine.fire_triggers() == 0  # the window was reset when it fired


# -- state changes before the end (real time: the upstream flows pause and sleep) -----------


async def outputs_of(engine: Engine, flow_id: str) -> list[tuple[str, str]]:
    found = []
    for view in await started_by(engine, flow_id):
        ended_view = await engine.wait(view.id, timeout=TIMEOUT)
        assert ended_view.state == "COMPLETED", ended_view.error
        assert ended_view.trigger is not None
        found.append((ended_view.trigger["state"], ended_view.trigger["executionId"]))
    return sorted(found)


async def test_a_precondition_on_paused_fires_when_the_upstream_pauses(settings: Settings) -> None:
    """MultipleConditionTriggerCaseTest.flowTriggerOnPaused: flow-trigger-paused-flow pauses
    half a second; the listener (preconditions on its PAUSED state) fires once."""
    async with Engine(settings) as engine:
        await load(engine, "flow-trigger-paused-flow.yaml", "flow-trigger-paused-listen.yaml")
        started = await engine.start_execution(
            "io.kestra.tests.trigger.paused", "flow-trigger-paused-flow"
        )
        upstream = await engine.wait(started.id, timeout=TIMEOUT)
        assert upstream.state == "COMPLETED", upstream.error
        assert len(upstream.task_runs) == 2
        assert await engine.fire_triggers() == 1
        assert await engine.fire_triggers() == 0
        assert await outputs_of(engine, "flow-trigger-paused-listen") == [("PAUSED", upstream.id)]


async def test_a_flow_trigger_hears_running_paused_and_the_end(settings: Settings) -> None:
    """FlowTriggerCaseTest.triggerWithPause: states [RUNNING, PAUSED, SUCCESS, …] fire four
    times for one execution that pauses once: RUNNING (start), PAUSED, RUNNING (resume),
    SUCCESS."""
    async with Engine(settings) as engine:
        await load(engine, "trigger-flow-with-pause.yaml", "trigger-flow-listener-with-pause.yaml")
        started = await engine.start_execution(
            "io.kestra.tests.trigger.pause", "trigger-flow-with-pause"
        )
        # A pass while it runs hears what happened so far; the rest comes with later passes.
        await engine.wait(started.id, until=lambda view: view.state == "PAUSED", timeout=TIMEOUT)
        first = await engine.fire_triggers()
        upstream = await engine.wait(started.id, timeout=TIMEOUT)
        assert upstream.state == "COMPLETED", upstream.error
        assert first + await engine.fire_triggers() == 4
        assert await engine.fire_triggers() == 0
        assert await outputs_of(engine, "trigger-flow-listener-with-pause") == [
            ("PAUSED", upstream.id),
            ("RUNNING", upstream.id),
            ("RUNNING", upstream.id),
            ("SUCCESS", upstream.id),
        ]


async def test_a_listener_hears_the_queued_executions_of_a_limited_flow(db_path: Path) -> None:
    """FlowTriggerCaseTest.triggerWithConcurrencyLimit: of two executions of a flow limited
    to one at a time, the first runs and ends, the second is QUEUED, then runs and ends:
    the listener (states and preconditions QUEUED, RUNNING, SUCCESS) fires five times,
    from a server's own trigger loop."""
    namespace = "io.kestra.tests.trigger.concurrency"
    settings = fast_settings(db_path, trigger_interval=0.1)
    async with Engine(settings, serve=True) as engine:
        for name in (
            "trigger-flow-with-concurrency-limit.yaml",
            "trigger-flow-listener-with-concurrency-limit.yaml",
        ):
            await engine.put_flow_file(VALIDS / name)

        async def marked() -> bool:
            return await engine.store.scheduler_cursor("triggers") is not None

        await assert_eventually(marked, timeout=TIMEOUT, what="the scheduler's first pass")
        first = await engine.start_execution(namespace, "trigger-flow-with-concurrency-limit")
        await engine.wait(first.id, until=lambda view: view.state == "RUNNING", timeout=TIMEOUT)
        second = await engine.start_execution(namespace, "trigger-flow-with-concurrency-limit")
        for execution in (first, second):
            view = await engine.wait(execution.id, timeout=TIMEOUT)
            assert view.state == "COMPLETED", view.error
        listener = "trigger-flow-listener-with-concurrency-limit"

        async def five() -> bool:
            return len(await engine.list_executions(flow_id=listener)) >= 5

        await assert_eventually(five, timeout=TIMEOUT, what="five listener executions")
        got = []
        for view in await started_by(engine, listener):
            done = await engine.wait(view.id, timeout=TIMEOUT)
            assert done.outputs is not None, done.error
            got.append((done.outputs["status"], done.outputs["executionId"]))
        assert sorted(got) == sorted(
            [
                ("RUNNING", first.id),
                ("SUCCESS", first.id),
                ("QUEUED", second.id),
                ("RUNNING", second.id),
                ("SUCCESS", second.id),
            ]
        )


@pytest.mark.parametrize(("catch_up", "fired"), [("QUEUE", 1), ("DROP", 0)])
async def test_resuming_a_window_queues_or_drops_what_ended_while_paused(
    engine: Engine, clock: Clock, catch_up: CatchUp, fired: int
) -> None:
    await load(engine, *PRECONDITION_FLOWS)
    listener = "flow-trigger-preconditions-flow-listen"
    await engine.pause_trigger(PRECONDITIONS, listener, "flow")
    await run(engine, clock, PRECONDITIONS, "flow-trigger-preconditions-flow-a")
    await run(engine, clock, PRECONDITIONS, "flow-trigger-preconditions-flow-b")
    assert await engine.fire_triggers() == 0
    clock.tick()
    await engine.resume_trigger(PRECONDITIONS, listener, "flow", catch_up=catch_up)
    assert len(await started_by(engine, listener)) == fired
    assert await engine.fire_triggers() == 0  # judged once, whoever judged it
    await run(engine, clock, PRECONDITIONS, "flow-trigger-preconditions-flow-b")
    assert await engine.fire_triggers() == 0  # flow-a must end again in the window
    await run(engine, clock, PRECONDITIONS, "flow-trigger-preconditions-flow-a")
    assert await engine.fire_triggers() == 1
