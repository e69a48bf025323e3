"""The mapping from pausepoint's views to Kestra's shapes: states, histories, forms, filters."""

from __future__ import annotations

import pytest

from pausepoint.api.kestra_shapes import (
    KESTRA_STATE_NAMES,
    error_path,
    execution_histories,
    form_inputs,
    kestra_execution,
    parse_execution_filters,
    pausepoint_states,
)
from pausepoint.errors import InvalidInput
from pausepoint.models import EventView, ExecutionView, TaskRunView
from pausepoint.states import KESTRA_STATES, ExecutionState


def test_every_pausepoint_state_has_a_kestra_name_and_kill_is_terminate() -> None:
    assert set(KESTRA_STATES) == {state.value for state in ExecutionState}
    assert set(KESTRA_STATES.values()) <= set(KESTRA_STATE_NAMES)
    assert KESTRA_STATES["TERMINATED"] == "KILLED"
    assert KESTRA_STATES["CANCELLED"] == "CANCELLED"
    assert KESTRA_STATES["COMPLETED"] == "SUCCESS"


def test_a_kestra_state_filter_finds_every_pausepoint_state_it_names() -> None:
    for ours, theirs in KESTRA_STATES.items():
        assert ours in pausepoint_states(theirs)
    assert pausepoint_states("RUNNING") == ("RUNNING", "PAUSING")
    assert pausepoint_states("FAILED") == ("FAILED", "TIMED_OUT")
    assert pausepoint_states("RETRIED") == ()


def view(state: str, **extra: object) -> ExecutionView:
    fields: dict[str, object] = {
        "id": "e1",
        "namespace": "ns",
        "flow_id": "f",
        "flow_revision": 2,
        "state": state,
        "inputs": {"n": 1},
        "labels": {"team": "ops"},
        "created_at": "2026-01-01T00:00:00Z",
        **extra,
    }
    return ExecutionView.model_validate(fields)


def event(seq: int, kind: str, at: str) -> EventView:
    return EventView(execution_id="e1", seq=seq, type=kind, at=at, data={})


def test_histories_follow_the_log_and_end_in_the_current_state() -> None:
    events = [
        event(1, "workflow.started", "2026-01-01T00:00:01Z"),
        event(2, "task.started", "2026-01-01T00:00:01Z"),
        event(3, "workflow.pausing", "2026-01-01T00:00:02Z"),
        event(4, "workflow.paused", "2026-01-01T00:00:03Z"),
        event(5, "workflow.resumed", "2026-01-01T00:00:04Z"),
        event(6, "workflow.completed", "2026-01-01T00:00:05Z"),
    ]
    done = view("WARNING", ended_at="2026-01-01T00:00:05Z")
    assert [state for state, _ in execution_histories(done, events)] == [
        "CREATED",
        "RUNNING",
        "PAUSED",
        "RUNNING",
        "WARNING",
    ]
    shaped = kestra_execution(done, events)
    assert shaped["state"]["current"] == "WARNING"
    assert shaped["state"]["duration"] == "PT5S"
    assert shaped["state"]["endDate"] == "2026-01-01T00:00:05Z"
    assert shaped["labels"] == [{"key": "team", "value": "ops"}]
    assert (shaped["flowId"], shaped["flowRevision"]) == ("f", 2)


def test_a_running_execution_has_no_end_date_and_task_runs_keep_their_outputs() -> None:
    run = TaskRunView(
        id="r1",
        task_id="t",
        type="return",
        state="SUCCESS",
        attempt=1,
        started_at="2026-01-01T00:00:01Z",
        ended_at="2026-01-01T00:00:02Z",
        outputs={"value": "x"},
    )
    shaped = kestra_execution(view("PAUSING", task_runs=[run]))
    assert shaped["state"]["current"] == "RUNNING" and shaped["state"]["endDate"] is None
    (task,) = shaped["taskRunList"]
    assert (task["taskId"], task["executionId"], task["outputs"]) == ("t", "e1", {"value": "x"})
    assert [h["state"] for h in task["state"]["histories"]] == ["CREATED", "RUNNING", "SUCCESS"]


def test_form_inputs_read_multipart_and_urlencoded_text_fields() -> None:
    body = (
        b'--B\r\nContent-Disposition: form-data; name="n"\r\n\r\n5\r\n'
        b'--B\r\nContent-Disposition: form-data; name="s"\r\n\r\nh\xc3\xa9\r\n--B--\r\n'
    )
    assert form_inputs(body, "multipart/form-data; boundary=B") == {"n": "5", "s": "hé"}
    assert form_inputs(b"n=5&s=x", "application/x-www-form-urlencoded") == {"n": "5", "s": "x"}
    assert form_inputs(b"", "application/json") == {}


@pytest.mark.parametrize(
    ("body", "content_type", "path", "status"),
    [
        (b"--B\r\ngarbage", "multipart/form-data; boundary=B", "body", 422),
        (b"x", "multipart/form-data", "body", 422),
        (b'{"n": 5}', "application/json", "header.Content-Type", 415),
        (
            b'--B\r\nContent-Disposition: form-data; name="f"; filename="a"\r\n\r\n1\r\n--B--\r\n',
            "multipart/form-data; boundary=B",
            "inputs.f",
            422,
        ),
    ],
)
def test_a_form_that_is_not_one_is_refused_naming_the_place(
    body: bytes, content_type: str, path: str, status: int
) -> None:
    with pytest.raises(InvalidInput) as refused:
        form_inputs(body, content_type)
    assert refused.value.http_status == status
    assert [error_path(e.loc) for e in refused.value.errors] == [path]


def test_kestra_filters_map_to_the_list_and_others_are_refused_by_name() -> None:
    selected = parse_execution_filters(
        [
            ("filters[state][IN]", "PAUSED,KILLING"),
            ("filters[namespace][EQUALS]", "ns"),
            ("filters[flowId][EQUALS]", "f"),
            ("filters[labels][EQUALS][team]", "ops"),
            ("page", "2"),
        ]
    )
    assert selected.states == ("PAUSED", "CANCELLING")
    assert (selected.namespace, selected.flow_id, selected.labels) == ("ns", "f", {"team": "ops"})
    assert parse_execution_filters([("filters[state][EQUALS]", "RETRIED")]).matches_nothing
    for name, value in (
        ("filters[state][EQUALS]", "NAPPING"),
        ("filters[startDate][GREATER_THAN]", "2026-01-01"),
        ("filters[namespace][REGEX]", ".*"),
        ("surprise", "1"),
    ):
        with pytest.raises(InvalidInput) as refused:
            parse_execution_filters([(name, value)])
        assert [e.loc for e in refused.value.errors] == [("query", name)]
