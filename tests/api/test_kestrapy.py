"""Kestra's own Python client (``kestrapy``, pinned in the test extra), unchanged, against a
real server on loopback: a Kestra user's session, and bad input through Kestra's routes.

kestrapy is synchronous (``requests``): the tests call it in a thread, so the
server, which runs in the test's event loop, keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from pausepoint.testing import assert_eventually
from tests.api.conftest import RunningServer
from tests.api.kestra_errors import assert_kestra_error
from tests.api.matrix_support import gated_server, gates, wait_started

with warnings.catch_warnings():
    # One of kestrapy's generated models names a field "validate", which pydantic warns of.
    warnings.simplefilter("ignore", UserWarning)
    from kestrapy import KestraClient, QueryFilter
    from kestrapy.exceptions import (
        ApiException,
        BadRequestException,
        ConflictException,
        NotFoundException,
        UnauthorizedException,
        UnprocessableEntityException,
    )

T = TypeVar("T")

TENANT = "acme"
NAMESPACE = "api.kestra"
FLOW = f"""
id: review
namespace: {NAMESPACE}
labels:
  team: ops
inputs:
  - id: amount
    type: INT
  - id: key
    type: STRING
tasks:
  - id: work
    type: python
    function: flows_gates:step
    kwargs:
      key: "{{{{ inputs.key }}}}"
  - id: approve
    type: io.kestra.plugin.core.flow.Pause
    onResume:
      - id: approved
        type: BOOLEAN
      - id: budget
        type: INT
  - id: done
    type: io.kestra.plugin.core.debug.Return
    format: >-
      approved={{{{ outputs.approve.onResume.approved }}}}
      budget={{{{ outputs.approve.onResume.budget }}}}
"""
BROKEN_FLOW = f"""
id: broken
namespace: {NAMESPACE}
tasks:
  - id: nothing
    type: no.such.Task
"""


async def off_loop(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(function, *args, **kwargs)


def kestra_client(host: str, **credentials: str) -> KestraClient:
    """kestrapy's client (its constructor is not annotated)."""
    return KestraClient(host=host, timeout=30, **credentials)  # type: ignore[no-untyped-call]


def kestra(server: RunningServer, org: str = "acme", role: str = "admin") -> KestraClient:
    return kestra_client(server.base_url, token=server.keys[f"{org}:{role}"])


async def wait_for(
    client: KestraClient,
    execution_id: str,
    check: Callable[[Any], bool],
    tenant: str = TENANT,
    timeout: float = 10.0,
) -> Any:
    """Poll the execution through the client until ``check`` holds; fail after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        execution = await off_loop(client.executions.execution, execution_id, tenant)
        if check(execution):
            return execution
        assert loop.time() < deadline, f"{execution_id}: {execution.state.current}"
        await asyncio.sleep(0.02)


def state_of(execution: Any) -> str:
    return str(execution.state.current.value)


def task_state(execution: Any, task_id: str) -> str | None:
    for run in execution.task_run_list or []:
        if run.task_id == task_id:
            return str(run.state.current.value)
    return None


def waiting_for_approval(execution: Any) -> bool:
    return state_of(execution) == "PAUSED" and task_state(execution, "approve") == "PAUSED"


async def start(client: KestraClient, key: str, **extra: Any) -> str:
    created = await off_loop(
        client.executions.create_execution,
        TENANT,
        NAMESPACE,
        "review",
        inputs={"amount": 5, "key": key},
        **extra,
    )
    await wait_started(key)
    return str(created.id)


@pytest.fixture
async def kserver(db_path: Path) -> Any:
    async with gated_server(db_path) as server:
        client = kestra(server)
        await off_loop(client.flows.create_flow, TENANT, FLOW)
        yield server


async def test_a_kestra_session_flow_start_pause_resume_with_typed_inputs(
    kserver: RunningServer,
) -> None:
    client = kestra(kserver)
    flow = await off_loop(client.flows.flow, NAMESPACE, "review", TENANT)
    assert (flow.id, flow.namespace, flow.revision) == ("review", NAMESPACE, 1)
    assert flow.source.strip() == FLOW.strip()
    assert [label.key for label in flow.labels or []] == ["team"]
    verdicts = await off_loop(client.flows.validate_flows, TENANT, FLOW + "---\n" + BROKEN_FLOW)
    assert [(v.index, v.flow) for v in verdicts] == [(0, "review"), (1, None)]
    assert verdicts[0].constraints is None and "no.such.Task" in (verdicts[1].constraints or "")

    key = gates.new_key("kestra-session")
    created = await off_loop(
        client.executions.create_execution,
        TENANT,
        NAMESPACE,
        "review",
        labels=["ticket:T-7"],
        inputs={"amount": 5, "key": key},
    )
    execution_id = created.id
    assert created.inputs == {"amount": 5, "key": key}  # typed by the flow: 5, not "5"
    labels = {(label.key, label.value) for label in created.labels or []}
    assert labels == {("team", "ops"), ("ticket", "T-7")}  # the flow's and its own
    await wait_started(key)
    running = await off_loop(client.executions.execution, execution_id, TENANT)
    assert state_of(running) == "RUNNING" and task_state(running, "work") == "RUNNING"

    # Pause the running execution: it stops at the next checkpoint, once "work" ends.
    pausing = await off_loop(client.executions.pause_execution, execution_id, TENANT)
    assert state_of(pausing) == "RUNNING"  # pausepoint's PAUSING: Kestra has no word for it
    gates.gate(key).release.set()
    held = await wait_for(client, execution_id, lambda e: state_of(e) == "PAUSED")
    assert task_state(held, "approve") is None  # held before the Pause task started
    assert [h.state.value for h in held.state.histories] == ["CREATED", "RUNNING", "PAUSED"]

    await off_loop(client.executions.resume_execution, execution_id, TENANT)
    await wait_for(client, execution_id, waiting_for_approval)

    checked = await off_loop(
        client.executions.validate_resume_execution_inputs,
        execution_id,
        TENANT,
        inputs={"approved": True, "budget": 7},
    )
    assert {item["id"]: item["value"] for item in checked["inputs"]} == {
        "approved": True,
        "budget": 7,
    }
    with pytest.raises(UnprocessableEntityException) as refused:
        await off_loop(
            client.executions.resume_execution,
            execution_id,
            TENANT,
            inputs={"approved": "maybe", "budget": 7},
        )
    error = json.loads(refused.value.body or "")
    assert [e["path"] for e in error["_embedded"]["errors"]] == ["inputs.approved"]
    assert waiting_for_approval(await off_loop(client.executions.execution, execution_id, TENANT))

    await off_loop(
        client.executions.resume_execution,
        execution_id,
        TENANT,
        inputs={"approved": True, "budget": 7},
    )
    done = await wait_for(client, execution_id, lambda e: state_of(e) == "SUCCESS")
    runs = {run.task_id: run for run in done.task_run_list}
    assert runs["approve"].additional_properties["outputs"]["onResume"] == {
        "approved": True,
        "budget": 7,
    }
    assert runs["done"].additional_properties["outputs"]["value"] == "approved=True budget=7"
    states = [h.state.value for h in done.state.histories]
    assert states == ["CREATED", "RUNNING", "PAUSED", "RUNNING", "PAUSED", "RUNNING", "SUCCESS"]


async def test_kill_is_terminate_and_follow_streams_snapshots_until_the_end(
    kserver: RunningServer,
) -> None:
    client = kestra(kserver, role="operator")
    key = gates.new_key("kestra-follow")
    execution_id = await start(client, key)

    opened = threading.Event()

    def follow() -> list[Any]:
        seen = []
        for execution in client.executions.follow_execution(execution_id, TENANT):
            seen.append(execution)
            opened.set()
        return seen

    following = asyncio.ensure_future(off_loop(follow))
    assert await off_loop(opened.wait, 10)  # the first snapshot came: the stream is open
    killed = await off_loop(client.executions.kill_execution, execution_id, TENANT)
    assert state_of(killed) == "KILLED"
    snapshots = await asyncio.wait_for(following, 10)
    # As Kestra's own follow: a first frame with only the id, then whole snapshots.
    assert snapshots[0].model_fields_set == {"id"} and snapshots[0].id == execution_id
    assert state_of(snapshots[1]) == "RUNNING" and state_of(snapshots[-1]) == "KILLED"
    assert all(s.id == execution_id for s in snapshots)
    assert [h.state.value for h in snapshots[-1].state.histories][-1] == "KILLED"
    # In-flight work was stopped, not awaited.
    await assert_eventually(
        lambda: gates.gate(key).cancellations == 1 or None, what="the running task cancelled"
    )

    with pytest.raises(ConflictException):
        await off_loop(client.executions.kill_execution, execution_id, TENANT)
    async with kserver.client("acme", "operator") as http:
        audit = (await http.get(f"/api/v1/executions/{execution_id}/audit")).json()
    assert [(c["kind"], c["reason"]) for c in audit if c["status"] != "rejected"] == [
        ("terminate", "killed through Kestra's API")
    ]


async def test_bulk_by_ids_and_by_query_all_or_nothing_and_search(
    kserver: RunningServer,
) -> None:
    client = kestra(kserver, role="operator")
    keys = [gates.new_key("kestra-bulk") for _ in range(2)]
    ids = [await start(client, key, labels=["batch:b1"]) for key in keys]

    with pytest.raises(BadRequestException) as refused:
        await off_loop(client.executions.pause_executions_by_ids, TENANT, [*ids, "no-such-id"])
    error = json.loads(refused.value.body or "")
    assert error["message"] == "invalid bulk pause"
    assert error["invalids"] == [
        {"message": "execution not found", "invalidValue": "no-such-id", "path": "execution"}
    ]
    for execution_id in ids:  # nothing changed
        current = await off_loop(client.executions.execution, execution_id, TENANT)
        assert state_of(current) == "RUNNING"
    async with kserver.client("acme", "operator") as http:
        for execution_id in ids:
            assert (await http.get(f"/api/v1/executions/{execution_id}/audit")).json() == []

    paused = await off_loop(client.executions.pause_executions_by_ids, TENANT, ids)
    assert paused == {"count": 2}
    for key in keys:
        gates.gate(key).release.set()
    for execution_id in ids:
        await wait_for(client, execution_id, lambda e: state_of(e) == "PAUSED")

    batch = [
        QueryFilter(field="labels", operation="EQUALS", value={"batch": "b1"}),
        QueryFilter(field="state", operation="EQUALS", value="PAUSED"),
    ]
    assert await off_loop(client.executions.resume_executions_by_query, TENANT, batch) == {
        "count": 2
    }
    for execution_id in ids:
        await wait_for(client, execution_id, waiting_for_approval)

    found = await off_loop(client.executions.search_executions, TENANT, filters=batch)
    assert found["total"] == 2 and {e["id"] for e in found["results"]} == set(ids)
    assert all(e["state"]["current"] == "PAUSED" for e in found["results"])

    assert await off_loop(client.executions.kill_executions_by_query, TENANT, batch) == {"count": 2}
    killed = [
        QueryFilter(field="flowId", operation="EQUALS", value="review"),
        QueryFilter(field="state", operation="IN", value=["KILLED"]),
    ]
    found = await off_loop(client.executions.search_executions, TENANT, filters=killed)
    assert {e["id"] for e in found["results"]} == set(ids)
    with pytest.raises(BadRequestException):  # finished: Kestra refuses, nothing changes
        await off_loop(client.executions.kill_executions_by_ids, TENANT, ids)
    nothing = [QueryFilter(field="state", operation="EQUALS", value="RETRIED")]
    assert await off_loop(client.executions.pause_executions_by_query, TENANT, nothing) == {
        "count": 0
    }


async def test_basic_auth_with_the_key_and_the_main_tenant_and_tenancy(
    kserver: RunningServer,
) -> None:
    key = gates.new_key("kestra-auth")
    execution_id = await start(kestra(kserver, role="operator"), key)
    basic = kestra_client(kserver.base_url, username="anyone", password=kserver.keys["acme:viewer"])
    seen = await off_loop(basic.executions.execution, execution_id, TENANT)
    assert seen.id == execution_id
    with pytest.raises(ApiException) as forbidden:  # a viewer reads, does not control
        await off_loop(basic.executions.kill_execution, execution_id, TENANT)
    assert forbidden.value.status == 403
    wrong = kestra_client(kserver.base_url, username="anyone", password="pp_nope_nope")
    with pytest.raises(UnauthorizedException):
        await off_loop(wrong.executions.execution, execution_id, TENANT)

    # Another organization: its own tenant does not show acme's execution, acme's is unknown.
    globex = kestra(kserver, "globex")
    for tenant in ("globex", "acme", "main"):
        with pytest.raises(NotFoundException):
            await off_loop(globex.executions.execution, execution_id, tenant)
        with pytest.raises(NotFoundException):
            await off_loop(globex.executions.kill_execution, execution_id, tenant)
    assert (
        state_of(await off_loop(kestra(kserver).executions.execution, execution_id, TENANT))
        == "RUNNING"
    )

    # "main" is the default organization.
    main_key, _ = await kserver.engine.as_org("default").create_api_key("admin", "kestra main")
    main = kestra_client(kserver.base_url, token=main_key)
    stored = await off_loop(main.flows.create_flow, "main", FLOW)
    assert stored.revision == 1
    assert (await kserver.engine.as_org("default").flow_record(NAMESPACE, "review")).revision == 1
    with pytest.raises(NotFoundException):
        await off_loop(main.executions.execution, execution_id, "main")


# -- bad input through the Kestra routes ------------------------------------------------


async def executions_of(http: httpx.AsyncClient) -> list[str]:
    reply = await http.get("/api/v1/executions", params={"namespace": NAMESPACE})
    return [item["id"] for item in reply.json()["items"]]


async def test_bad_input_gets_kestras_error_shape_naming_the_field_and_changes_nothing(
    kserver: RunningServer,
) -> None:
    create = f"/api/v1/{TENANT}/executions/{NAMESPACE}/review"
    async with kserver.client("acme", "operator") as http:
        before = await executions_of(http)

        unknown = await http.get("/api/v1/nowhere/executions/search")
        assert "nowhere" in assert_kestra_error(unknown, 404)["message"]

        wrong_type = await http.post(create, files={"amount": (None, "five"), "key": (None, "k")})
        assert_kestra_error(wrong_type, 422, "inputs.amount")

        boundary = "multipart/form-data; boundary=XYZ"
        garbled = await http.post(create, content=b"--nope\r\n", headers={"Content-Type": boundary})
        assert_kestra_error(garbled, 422, "body")
        no_boundary = await http.post(
            create, content=b"a=b", headers={"Content-Type": "multipart/form-data"}
        )
        assert_kestra_error(no_boundary, 422, "body")
        upload = await http.post(create, files={"amount": ("a.txt", b"5"), "key": (None, "k")})
        assert_kestra_error(upload, 422, "inputs.amount")
        as_json = await http.post(create, json={"amount": 5})
        assert_kestra_error(as_json, 415, "header.Content-Type")
        bad_label = await http.post(
            create, params={"labels": "nocolon"}, files={"key": (None, "k")}
        )
        assert_kestra_error(bad_label, 422, "query.labels")

        bad_filter = await http.get(
            f"/api/v1/{TENANT}/executions/search", params={"filters[state][EQUALS]": "SLEEPING"}
        )
        assert_kestra_error(bad_filter, 422, "query.filters[state][EQUALS]")
        unsupported = await http.post(
            f"/api/v1/{TENANT}/executions/pause/by-query",
            params={"filters[startDate][GREATER_THAN]": "2020-01-01"},
        )
        assert_kestra_error(unsupported, 422, "query.filters[startDate][GREATER_THAN]")
        not_a_list = await http.post(f"/api/v1/{TENANT}/executions/pause/by-ids", json={"a": 1})
        assert_kestra_error(not_a_list, 422)

        for method, path in (
            ("GET", f"/api/v1/{TENANT}/executions/no-such-id"),
            ("POST", f"/api/v1/{TENANT}/executions/no-such-id/actions/pause"),
            ("POST", f"/api/v1/{TENANT}/executions/no-such-id/actions/resume"),
            ("DELETE", f"/api/v1/{TENANT}/executions/no-such-id/actions/kill"),
            ("DELETE", "/api/v1/executions/no-such-id/kill"),
            ("GET", f"/api/v1/{TENANT}/flows/{NAMESPACE}/no-such-flow"),
            ("POST", f"/api/v1/{TENANT}/executions/{NAMESPACE}/no-such-flow"),
        ):
            assert_kestra_error(await http.request(method, path), 404)

        assert await executions_of(http) == before

    async with kserver.client("acme", "admin") as http:
        again = await http.post(
            f"/api/v1/{TENANT}/flows",
            content=FLOW.encode(),
            headers={"Content-Type": "application/x-yaml"},
        )
        assert_kestra_error(again, 422, "id")
        invalid = await http.post(
            f"/api/v1/{TENANT}/flows",
            content=BROKEN_FLOW.encode(),
            headers={"Content-Type": "application/x-yaml"},
        )
        assert invalid.status_code == 422 and invalid.json()["_embedded"]["errors"], invalid.text


async def test_the_untenanted_resume_of_seed_004_takes_kestras_form_and_json(
    kserver: RunningServer,
) -> None:
    client = kestra(kserver, role="operator")
    key = gates.new_key("kestra-legacy")
    execution_id = await start(client, key)
    gates.gate(key).release.set()
    await wait_for(client, execution_id, waiting_for_approval)
    async with kserver.client("acme", "operator") as http:
        path = f"/api/v1/executions/{execution_id}/resume"
        refused = await http.post(
            path, files={"approved": (None, "perhaps"), "budget": (None, "3")}
        )
        assert_kestra_error(refused, 422, "inputs.approved")
        # The native route still takes JSON at the same path, with its own shape.
        native = await http.post(path, json={"inputs": {"approved": "perhaps"}})
        assert native.status_code == 422 and "detail" in native.json(), native.text
        reply = await http.post(path, files={"approved": (None, "true"), "budget": (None, "3")})
        assert reply.status_code == 200, reply.text
        assert reply.json()["id"] == execution_id
    done = await wait_for(client, execution_id, lambda e: state_of(e) == "SUCCESS")
    outputs = {run.task_id: run.additional_properties.get("outputs") for run in done.task_run_list}
    assert outputs["done"]["value"] == "approved=True budget=3"


async def test_a_bulk_retried_with_its_key_gets_the_first_answer_after_states_changed(
    kserver: RunningServer,
) -> None:
    client = kestra(kserver, role="operator")
    key = gates.new_key("kestra-bulk-retry")
    execution_id = await start(client, key)
    url = f"/api/v1/{TENANT}/executions/pause/by-ids"
    async with kserver.client("acme", "operator") as http:
        first = await http.post(url, json=[execution_id], headers={"Idempotency-Key": "k-1"})
        assert (first.status_code, first.json()) == (200, {"count": 1}), first.text
        gates.gate(key).release.set()
        await wait_for(client, execution_id, lambda e: state_of(e) == "PAUSED")

        # The execution is paused now: a new request would be refused as a whole,
        # but the retry of the first one is answered as the first time.
        again = await http.post(url, json=[execution_id], headers={"Idempotency-Key": "k-1"})
        assert (again.status_code, again.json()) == (200, {"count": 1}), again.text
        assert again.headers.get("idempotent-replayed") == "true"
        fresh = await http.post(url, json=[execution_id], headers={"Idempotency-Key": "k-2"})
        assert fresh.status_code == 400, fresh.text
        assert fresh.json()["invalids"][0]["invalidValue"] == execution_id
        audit = (await http.get(f"/api/v1/executions/{execution_id}/audit")).json()
    assert [c["kind"] for c in audit if c["status"] != "rejected"] == ["pause"]
