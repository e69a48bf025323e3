"""pausepoint's own approval rules, in process: secrets in review forms, roles, exclusions."""

from __future__ import annotations

import pytest

from pausepoint.errors import FlowError
from pausepoint.flow import load_flow
from pausepoint.service.engine import Engine

SECRET_FORM = """
id: keys
namespace: approvals.tests
tasks:
  - id: review
    type: approval
    separationOfDuties: false
    inputs:
      - id: token
        type: SECRET
  - id: use
    type: return
    format: "{{ outputs.review.inputs.token | length }}"
"""


async def test_a_secret_review_input_is_masked_everywhere_but_readable_by_tasks(
    engine: Engine,
) -> None:
    record = await engine.put_flow(SECRET_FORM)
    started = await engine.start_execution(record.namespace, record.flow_id)
    await engine.wait(started.id, until=lambda v: v.state == "PAUSED", timeout=30)
    await engine.vote(started.id, "approve", inputs={"token": "hunter2-secret"}, actor="ops")
    view = await engine.wait(started.id, timeout=30)
    assert view.state == "COMPLETED", view.error
    use = next(r for r in view.task_runs if r.task_id == "use")
    assert (use.outputs or {})["value"] == len("hunter2-secret")  # the task read it
    shown = view.model_dump_json() + "".join(
        c.model_dump_json() for c in await engine.audit(started.id)
    )
    shown += "".join(e.model_dump_json() for e in await engine.events(started.id, limit=1000))
    assert "hunter2-secret" not in shown


def test_viewers_cannot_be_approvers() -> None:
    with pytest.raises(FlowError, match="roles"):
        load_flow(
            "id: f\nnamespace: n\ntasks:\n  - id: a\n    type: approval\n"
            "    approvers: {roles: [viewer]}\n",
            source="f.yaml",
        )


async def test_no_one_is_excluded_without_separation_of_duties(engine: Engine) -> None:
    record = await engine.put_flow(SECRET_FORM)
    started = await engine.start_execution(record.namespace, record.flow_id)
    view = await engine.wait(started.id, until=lambda v: v.state == "PAUSED", timeout=30)
    (point,) = view.pause_points
    assert point.approval is not None and point.approval.excluded == {}
