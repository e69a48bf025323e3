"""Bad flows, bad inputs and unknown ids are refused with errors that say where; nothing breaks."""

from __future__ import annotations

from typing import Any

import pytest

from pausepoint.errors import FlowError, InputValidationError, NotFound
from pausepoint.service.engine import Engine

TIMEOUT = 10.0

VALID = """\
id: still_works
namespace: bad.input
tasks:
  - id: hello
    type: return
    format: still working
"""

TYPED = """\
id: typed
namespace: bad.input
inputs:
  - id: count
    type: INT
  - id: when
    type: DATE
    required: false
  - id: color
    type: SELECT
    values: [red, green]
    defaults: red
  - id: contact
    type: EMAIL
    required: false
tasks:
  - id: show
    type: return
    format: "{{ inputs.count }} {{ inputs.color }}"
"""


async def assert_database_still_works(engine: Engine) -> None:
    await engine.put_flow(VALID)
    execution = await engine.start_execution("bad.input", "still_works")
    view = await engine.wait(execution.id, timeout=TIMEOUT)
    assert view.state == "COMPLETED"
    assert view.task_run("hello").outputs == {"value": "still working"}


BAD_FLOWS = {
    "malformed_yaml": (
        "id: broken\nnamespace: bad.input\ntasks:\n"
        "  - id: a\n    type: log\n    message: [unclosed\n",
        ["broken.yaml:7", "invalid YAML", "line 6"],
    ),
    "tab_indentation": (
        "id: broken\n\tnamespace: bad.input\n",
        ["broken.yaml:2", "invalid YAML", "tab"],
    ),
    "unknown_task_type": (
        "id: broken\nnamespace: bad.input\ntasks:\n"
        "  - id: a\n    type: log\n    message: hi\n"
        "  - id: b\n    type: io.kestra.plugin.nope.Thing\n",
        ["broken.yaml:8", "tasks[1].type", "io.kestra.plugin.nope.Thing", "known types"],
    ),
    "duplicate_task_id": (
        "id: broken\nnamespace: bad.input\ntasks:\n"
        "  - id: a\n    type: log\n    message: hi\n"
        "  - id: a\n    type: log\n    message: again\n",
        ["broken.yaml:7", "tasks[1].id", "duplicate task id 'a'", "line 4"],
    ),
    "bad_duration": (
        "id: broken\nnamespace: bad.input\ntasks:\n"
        "  - id: wait\n    type: pause\n    pauseDuration: P5X\n",
        ["broken.yaml:6", "tasks[0].pauseDuration", "'P5X'", "ISO-8601"],
    ),
    "bad_template_syntax": (
        "id: broken\nnamespace: bad.input\ntasks:\n"
        '  - id: a\n    type: log\n    message: "{{ inputs.name "\n',
        ["broken.yaml:6", "tasks[0].message", "invalid template", "{{ inputs.name"],
    ),
    "missing_property": (
        "id: broken\nnamespace: bad.input\ntasks:\n  - id: a\n    type: log\n",
        ["broken.yaml:4", "tasks[0].message", "missing"],
    ),
    "unknown_input_type": (
        "id: broken\nnamespace: bad.input\ninputs:\n  - id: n\n    type: NOPE\n"
        "tasks:\n  - id: a\n    type: log\n    message: hi\n",
        ["broken.yaml:5", "inputs[0].type", "NOPE"],
    ),
    "not_a_mapping": ("- a\n- b\n", ["broken.yaml", "mapping"]),
    "empty": ("", ["broken.yaml", "empty"]),
}


@pytest.mark.parametrize("case", sorted(BAD_FLOWS))
async def test_a_bad_flow_is_refused_with_the_place_named(engine: Engine, case: str) -> None:
    source, expected = BAD_FLOWS[case]

    with pytest.raises(FlowError) as refused:
        await engine.put_flow(source, source_name="broken.yaml")

    for fragment in expected:
        assert fragment in refused.value.message, (fragment, refused.value.message)
    assert refused.value.errors
    assert await engine.list_flows() == []
    await assert_database_still_works(engine)


async def test_a_bad_flow_file_is_refused_with_its_file_name(engine: Engine, tmp_path: Any) -> None:
    path = tmp_path / "approval.yaml"
    path.write_text(BAD_FLOWS["bad_duration"][0], encoding="utf-8")

    with pytest.raises(FlowError, match=r"^approval\.yaml:6 tasks\[0\]\.pauseDuration"):
        await engine.put_flow_file(path)
    with pytest.raises(FlowError, match="cannot read"):
        await engine.put_flow_file(tmp_path / "missing.yaml")
    await assert_database_still_works(engine)


async def test_a_bad_update_keeps_the_previous_revision(engine: Engine) -> None:
    first = await engine.put_flow(VALID)
    with pytest.raises(FlowError):
        await engine.put_flow(VALID.replace("type: return", "type: nope"))
    [record] = await engine.list_flows()
    assert record.revision == first.revision
    await assert_database_still_works(engine)


@pytest.mark.parametrize(
    ("inputs", "field", "fragment"),
    [
        ({}, "count", "required"),
        ({"count": "abc"}, "count", "integer"),
        ({"count": 1, "when": "yesterday"}, "when", "date"),
        ({"count": 1, "color": "blue"}, "color", "'red', 'green'"),
        ({"count": 1, "contact": "nope"}, "contact", "email"),
        ({"count": 1, "extra": 2}, "extra", "unknown input"),
    ],
)
async def test_bad_input_values_are_refused_naming_the_input(
    engine: Engine, inputs: dict[str, Any], field: str, fragment: str
) -> None:
    await engine.put_flow(TYPED)

    with pytest.raises(InputValidationError) as refused:
        await engine.start_execution("bad.input", "typed", inputs=inputs)

    assert f"inputs.{field}" in refused.value.message
    assert fragment in refused.value.message
    [error] = refused.value.errors
    assert error.loc == ("inputs", field)
    assert await engine.list_executions() == []
    await assert_database_still_works(engine)


async def test_good_input_values_are_coerced(engine: Engine) -> None:
    await engine.put_flow(TYPED)
    execution = await engine.start_execution(
        "bad.input", "typed", inputs={"count": "7", "color": "green"}
    )
    view = await engine.wait(execution.id, timeout=TIMEOUT)
    assert view.state == "COMPLETED"
    assert view.task_run("show").outputs == {"value": "7 green"}


UNKNOWN = "0000000000000000000000ff"


@pytest.mark.parametrize(
    "operation",
    [
        "state",
        "execution",
        "events",
        "commands",
        "pause",
        "resume",
        "cancel",
        "terminate",
        "inject",
    ],
)
async def test_an_unknown_execution_id_is_not_found(engine: Engine, operation: str) -> None:
    calls: dict[str, Any] = {
        "state": lambda: engine.state(UNKNOWN),
        "execution": lambda: engine.execution(UNKNOWN),
        "events": lambda: engine.events(UNKNOWN),
        "commands": lambda: engine.commands(UNKNOWN),
        "pause": lambda: engine.pause(UNKNOWN),
        "resume": lambda: engine.resume(UNKNOWN, inputs={"a": 1}),
        "cancel": lambda: engine.cancel(UNKNOWN),
        "terminate": lambda: engine.terminate(UNKNOWN, reason="stop"),
        "inject": lambda: engine.inject(UNKNOWN, "hello"),
    }

    with pytest.raises(NotFound, match=f"execution {UNKNOWN} not found"):
        await calls[operation]()

    await assert_database_still_works(engine)


async def test_follow_of_an_unknown_execution_is_not_found(engine: Engine) -> None:
    with pytest.raises(NotFound):
        async for _ in engine.follow(UNKNOWN):
            pass
    await assert_database_still_works(engine)


async def test_an_unknown_flow_is_not_found(engine: Engine) -> None:
    with pytest.raises(NotFound, match=r"flow bad\.input\.nope not found"):
        await engine.start_execution("bad.input", "nope")
    await assert_database_still_works(engine)
