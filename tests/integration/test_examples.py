"""Every flow in examples/ loads and runs on a real SQLite file with the outcome it promises."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pausepoint.errors import InvalidInput
from pausepoint.models import ExecutionView
from pausepoint.service.engine import Engine
from pausepoint.testing import fast_settings
from tests.conftest import EXAMPLES
from tests.integration.flows_webhook import webhook_receiver

NAMESPACE = "company.team"
TIMEOUT = 10.0


@pytest.fixture
async def engine(db_path: Path) -> AsyncIterator[Engine]:
    async with Engine(fast_settings(db_path, python_paths=(str(EXAMPLES),))) as running:
        yield running


def paused(view: ExecutionView) -> bool:
    return view.state == "PAUSED"


async def log_lines(engine: Engine, execution_id: str, task_id: str) -> list[str]:
    return [
        line["message"]
        for event in await engine.events(execution_id)
        if event.type == "task.completed" and event.data.get("task_id") == task_id
        for line in event.data.get("logs", [])
    ]


def runs(view: ExecutionView) -> list[tuple[str, str]]:
    return [(run.task_id, run.state) for run in view.task_runs]


async def test_every_example_flow_loads() -> None:
    names = sorted(path.name for path in EXAMPLES.glob("*.yaml"))
    assert set(names) >= {
        "human_in_the_loop.yaml",
        "parallel_approvals.yaml",
        "pause_warn.yaml",
        "python_task.yaml",
        "release_sign_off.yaml",
        "vacation_approval_process.yaml",
    }
    for path in EXAMPLES.glob("*.yaml"):
        assert path.read_text(encoding="utf-8").startswith("# Shows:"), path.name


async def test_load_flow_dir_stores_every_example(engine: Engine) -> None:
    records = await engine.load_flow_dir(EXAMPLES)
    assert {record.flow_id for record in records} >= {
        "human_in_the_loop",
        "parallel_approvals",
        "pause_warn",
        "python_task",
        "release_sign_off",
        "vacation_approval_process",
    }


async def test_human_in_the_loop_waits_for_a_resume_then_completes(engine: Engine) -> None:
    await engine.put_flow_file(EXAMPLES / "human_in_the_loop.yaml")
    started = await engine.start_execution(NAMESPACE, "human_in_the_loop")

    view = await engine.wait(started.id, until=paused, timeout=TIMEOUT)
    assert runs(view) == [("before_approval", "SUCCESS"), ("pause", "PAUSED")]
    assert view.task_run("before_approval").outputs == {
        "value": "Output data that needs to be validated by a human"
    }
    [point] = view.pause_points
    assert (point.kind, point.task_id, point.deadline) == ("task", "pause", None)

    reply = await engine.resume(started.id)
    assert reply.applied is True

    view = await engine.wait(started.id, timeout=TIMEOUT)
    assert view.state == "COMPLETED"
    assert [run.task_id for run in view.task_runs] == [
        "before_approval",
        "pause",
        "run_post_approval",
        "post_resume",
    ]
    assert await log_lines(engine, started.id, "run_post_approval") == [
        "Manual approval received! Continuing the execution..."
    ]
    value = view.task_run("post_resume").outputs["value"]  # type: ignore[index]
    assert re.fullmatch(r"post_resume started on \d{4}-\d\d-\d\dT[\d:.]+Z after the Pause", value)


async def test_vacation_approval_notifies_the_webhook_and_uses_the_resume_inputs(
    engine: Engine,
) -> None:
    await engine.put_flow_file(EXAMPLES / "vacation_approval_process.yaml")
    with webhook_receiver() as receiver:
        started = await engine.start_execution(
            NAMESPACE,
            "vacation_approval_process",
            inputs={
                "slack_webhook_uri": f"{receiver.base_url}/slack",
                "approval_api_uri": f"{receiver.base_url}/vacations",
            },
        )
        assert started.inputs["request"]["name"] == "Rick Astley"

        view = await engine.wait(
            started.id,
            until=lambda v: (
                paused(v)
                and v.task_run("send_approval_request").state in ("SUCCESS", "FAILED", "WARNING")
            ),
            timeout=TIMEOUT,
        )
        [point] = view.pause_points
        assert point.task_id == "wait_for_approval"
        schema: dict[str, Any] = point.on_resume_schema or {}
        assert schema["properties"]["approved"]["type"] == "boolean"
        assert schema["properties"]["approved"]["default"] is True
        assert schema["properties"]["reason"]["type"] == "string"
        assert schema["required"] == []

        assert view.task_run("send_approval_request").state == "SUCCESS"
        [notification] = receiver.to("/slack")
        assert notification.headers["content-type"].startswith("application/json")
        payload = notification.json()
        assert payload["channel"] == "#vacation"
        assert "Validate holiday request for Rick Astley" in payload["text"]
        assert "2042-07-01" in payload["text"]
        assert started.id in payload["text"]

        await engine.resume(
            started.id, inputs={"approved": False, "reason": "x"}, actor="manager@example.com"
        )
        view = await engine.wait(started.id, timeout=TIMEOUT)

        assert view.state == "COMPLETED", view.error
        pause_outputs = view.task_run("wait_for_approval").outputs or {}
        assert pause_outputs["onResume"] == {"approved": False, "reason": "x"}
        assert pause_outputs["resumed"]["by"] == "manager@example.com"
        [decision] = receiver.to("/vacations")
        assert decision.json()["approved"] is False
        assert decision.json()["reason"] == "x"
        assert decision.json()["request"]["name"] == "Rick Astley"
        [line] = await log_lines(engine, started.id, "log")
        assert line.startswith("Status is x (approved: False).")
        assert "Process finished with" in line and "/vacations" in line


async def test_vacation_approval_runs_without_a_listener(engine: Engine) -> None:
    await engine.put_flow_file(EXAMPLES / "vacation_approval_process.yaml")
    with webhook_receiver() as receiver:
        nobody = receiver.base_url  # closed below: nothing listens there any more
    started = await engine.start_execution(
        NAMESPACE,
        "vacation_approval_process",
        inputs={"slack_webhook_uri": f"{nobody}/slack", "approval_api_uri": f"{nobody}/api"},
    )
    view = await engine.wait(
        started.id,
        until=lambda v: paused(v) and v.task_run("send_approval_request").ended_at is not None,
        timeout=TIMEOUT,
    )
    assert view.task_run("send_approval_request").state in ("FAILED", "WARNING")
    assert view.task_run("wait_for_approval").state == "PAUSED"

    await engine.resume(started.id)
    view = await engine.wait(started.id, timeout=TIMEOUT)
    assert view.state in ("COMPLETED", "WARNING"), view.error
    [line] = await log_lines(engine, started.id, "log")
    assert line.startswith("Status is Well-deserved vacation (approved: True).")
    assert line.endswith("Process finished with no reply from the approval API")


async def test_pause_warn_ends_in_warning_when_nobody_resumes(engine: Engine) -> None:
    source = (EXAMPLES / "pause_warn.yaml").read_text(encoding="utf-8")
    assert "pauseDuration: PT5M" in source
    await engine.put_flow(source.replace("PT5M", "PT0.2S"))
    started = await engine.start_execution(NAMESPACE, "pause_warn")

    view = await engine.wait(started.id, timeout=TIMEOUT)

    assert view.state == "WARNING"
    assert runs(view) == [("pause", "WARNING"), ("post_resume", "SUCCESS")]
    assert (view.task_run("pause").outputs or {})["resumed"]["by"] == "timer"


async def test_pause_warn_resumed_in_time_completes(engine: Engine) -> None:
    await engine.put_flow_file(EXAMPLES / "pause_warn.yaml")
    started = await engine.start_execution(NAMESPACE, "pause_warn")
    view = await engine.wait(started.id, until=paused, timeout=TIMEOUT)
    [point] = view.pause_points
    assert point.deadline is not None

    await engine.resume(started.id)
    view = await engine.wait(started.id, timeout=TIMEOUT)

    assert view.state == "COMPLETED"
    assert runs(view) == [("pause", "SUCCESS"), ("post_resume", "SUCCESS")]


async def test_python_task_calls_the_example_function(engine: Engine) -> None:
    await engine.put_flow_file(EXAMPLES / "python_task.yaml")
    started = await engine.start_execution(NAMESPACE, "python_task")

    view = await engine.wait(started.id, timeout=TIMEOUT)

    assert view.state == "COMPLETED", view.error
    assert view.task_run("quote").outputs == {
        "lines": [{"sku": "book", "total": 25.0}, {"sku": "pen", "total": 6.0}],
        "subtotal": 31.0,
        "discount": 3.1,
        "total": 27.9,
    }
    assert view.outputs == {"total": 27.9}
    assert await log_lines(engine, started.id, "report") == [
        "Subtotal 31.0, discount 3.1, total 27.9"
    ]


async def test_python_task_failure_names_the_function(engine: Engine) -> None:
    await engine.put_flow_file(EXAMPLES / "python_task.yaml")
    started = await engine.start_execution(NAMESPACE, "python_task", inputs={"discount": 2})

    view = await engine.wait(started.id, timeout=TIMEOUT)

    assert view.state == "FAILED"
    assert view.error is not None
    assert "pricing:quote" in view.error and "discount must be between 0 and 1" in view.error
    assert [run.task_id for run in view.task_runs] == ["quote"]


async def test_parallel_approvals_need_a_pause_id_then_complete(engine: Engine) -> None:
    await engine.put_flow_file(EXAMPLES / "parallel_approvals.yaml")
    started = await engine.start_execution(NAMESPACE, "parallel_approvals")

    view = await engine.wait(
        started.id, until=lambda v: paused(v) and len(v.pause_points) == 2, timeout=TIMEOUT
    )
    points = {point.task_id: point for point in view.pause_points}
    assert set(points) == {"finance_approval", "legal_approval"}
    assert points["finance_approval"].on_resume_schema["required"] == ["approved"]  # type: ignore[index]

    with pytest.raises(InvalidInput) as refused:
        await engine.resume(started.id, inputs={"approved": True})
    for point in points.values():
        assert point.id in refused.value.message
    assert refused.value.errors[0].loc == ("body", "pause_id")
    assert (await engine.state(started.id)).state == "PAUSED"

    await engine.resume(
        started.id,
        pause_id=points["finance_approval"].id,
        inputs={"approved": True, "budget": "1200"},
    )
    view = await engine.wait(started.id, until=lambda v: len(v.pause_points) == 1, timeout=TIMEOUT)
    assert view.state == "PAUSED"
    assert [point.task_id for point in view.pause_points] == ["legal_approval"]
    assert view.task_run("finance_approval").state == "SUCCESS"
    assert "decision" not in [run.task_id for run in view.task_runs]

    await engine.resume(started.id, pause_id=points["legal_approval"].id, inputs={"approved": True})
    view = await engine.wait(started.id, timeout=TIMEOUT)

    assert view.state == "COMPLETED", view.error
    assert view.outputs == {
        "decision": "ACME supply agreement: signed (budget 1200, legal: no remarks)"
    }
    assert view.task_run("finance_approval").outputs["onResume"] == {  # type: ignore[index]
        "approved": True,
        "budget": 1200,
    }


async def test_vacation_approval_as_make_run_starts_it_completes(engine: Engine) -> None:
    """No webhook configured (the README's `make run`): the request is logged instead."""
    record = await engine.put_flow_file(EXAMPLES / "vacation_approval_process.yaml")
    execution = await engine.start_execution(record.namespace, record.flow_id)
    paused = await engine.wait(execution.id, until=lambda v: v.state == "PAUSED", timeout=10)
    assert paused.task_run("log_approval_request").state == "SUCCESS"
    await engine.resume(execution.id, inputs={"approved": "no", "reason": "Team offsite"})
    view = await engine.wait(execution.id, timeout=10)
    assert view.state == "COMPLETED", view.error
    assert (view.task_run("wait_for_approval").outputs or {})["onResume"] == {
        "approved": False,
        "reason": "Team offsite",
    }
    messages = [
        log["message"]
        for event in await engine.events(execution.id)
        if event.type == "task.completed" and event.data["task_id"] == "log"
        for log in event.data["logs"]
    ]
    assert messages and "Status is Team offsite (approved: False)" in messages[0]


async def test_release_sign_off_posts_links_that_count_toward_each_groups_quorum(
    engine: Engine,
) -> None:
    """The chat message carries each named approver's signed links; a link votes as that
    person, in the groups their keys give them: one of ops and one of security ship it."""
    await engine.create_api_key("operator", "dana", user="dana", groups=("ops",))
    await engine.create_api_key("operator", "lee", user="lee", groups=("security",))
    record = await engine.put_flow_file(EXAMPLES / "release_sign_off.yaml")
    with webhook_receiver() as receiver:
        started = await engine.start_execution(
            record.namespace,
            record.flow_id,
            inputs={"chat_webhook_uri": f"{receiver.base_url}/chat"},
        )
        view = await engine.wait(started.id, until=paused, timeout=TIMEOUT)
        [message] = receiver.to("/chat")
    posted = message.json()
    assert "Release 2.4.0 needs one of ops and one of security" in posted["text"]
    assert started.id in posted["text"]
    links = posted["links"]
    assert set(links) == {"dana", "lee"}
    token = {user: links[user]["approve"].rsplit("/decide/", 1)[1] for user in links}
    (point,) = view.pause_points
    assert point.approval is not None and point.approval.quorum == {"ops": 1, "security": 1}

    await engine.use_decision_link(token["dana"], "approve", None, {})
    still = await engine.wait(started.id, until=paused, timeout=TIMEOUT)
    (point,) = still.pause_points
    assert point.approval is not None
    assert [(v.by, v.groups) for v in point.approval.votes] == [("dana", ["ops"])]

    await engine.use_decision_link(token["lee"], "approve", None, {})
    done = await engine.wait(started.id, timeout=TIMEOUT)
    assert done.state == "COMPLETED", done.error
    outputs = done.task_run("sign_off").outputs or {}
    assert outputs["decision"] == "APPROVED" and outputs["by"] == "lee"
    assert await log_lines(engine, started.id, "ship") == ["Shipping 2.4.0: approved by 2 people"]


async def test_release_sign_off_as_make_run_starts_it_logs_and_a_deny_holds(
    engine: Engine,
) -> None:
    record = await engine.put_flow_file(EXAMPLES / "release_sign_off.yaml")
    started = await engine.start_execution(record.namespace, record.flow_id)
    await engine.wait(started.id, until=paused, timeout=TIMEOUT)
    [line] = await log_lines(engine, started.id, "log_links")
    assert line.startswith("Release 2.4.0 waits for sign-off: ")
    with pytest.raises(InvalidInput):  # commentRequired: ON_DENY
        await engine.vote(started.id, "deny", actor="lee", groups=("security",))
    await engine.vote(started.id, "deny", comment="CVE open", actor="lee", groups=("security",))
    done = await engine.wait(started.id, timeout=TIMEOUT)
    assert done.state == "CANCELLED"
    assert await log_lines(engine, started.id, "hold") == ["Held by lee: CVE open"]
