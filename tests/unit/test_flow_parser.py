"""Loading flows: Kestra aliases, conformance flows, paths, and one-line error messages."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pausepoint.errors import FlowError, NotFound
from pausepoint.flow import (
    Flow,
    flow_from_dict,
    iter_tasks,
    load_flow,
    load_flow_file,
    task_at,
    yaml_document,
)
from pausepoint.flow.model import ForEachTask, LogTask, PauseTask, SwitchTask
from pausepoint.flow.parser import MAX_FLOW_BYTES, load_yaml_data
from pausepoint.flow.paths import path_of

CONFORMANCE = Path(__file__).parents[3] / "shared" / "conformance" / "kestra"


def problems(text: str, source: str = "flow.yaml") -> list[str]:
    with pytest.raises(FlowError) as caught:
        load_flow(text, source=source)
    lines = caught.value.message.splitlines()
    assert len(lines) == len(caught.value.errors)
    return lines


# --- conformance and documentation flows ----------------------------------------------


def conformance_files() -> list[Path]:
    return sorted(CONFORMANCE.glob("*.y*ml")) if CONFORMANCE.is_dir() else []


@pytest.mark.skipif(not CONFORMANCE.is_dir(), reason=f"{CONFORMANCE} is absent")
@pytest.mark.parametrize("path", conformance_files(), ids=lambda path: path.name)
def test_every_kestra_conformance_flow_loads(path: Path) -> None:
    flow = load_flow_file(path)
    assert flow.namespace == "io.kestra.tests"
    for _, task in iter_tasks(flow):
        assert "." not in task.type


@pytest.mark.skipif(not CONFORMANCE.is_dir(), reason=f"{CONFORMANCE} is absent")
def test_conformance_aliases_map_as_the_engine_expects() -> None:
    each = load_flow_file(CONFORMANCE / "each-parallel-pause.yml").tasks[0]
    assert isinstance(each, ForEachTask)
    assert (each.values, each.concurrency) == (["toto", "tata", "titi"], 0)
    pause = each.tasks[0]
    assert isinstance(pause, PauseTask) and pause.duration == "PT1S"
    assert [task.id for task in pause.tasks] == ["log"]

    errors = load_flow_file(CONFORMANCE / "pause.yaml").errors[0]
    assert isinstance(errors, LogTask) and errors.message == "I'm failing {{task.id}}"

    timeout = load_flow_file(CONFORMANCE / "pause-timeout.yaml").tasks[0]
    assert isinstance(timeout, PauseTask)
    assert (timeout.timeout, timeout.duration) == ("PT1S", None)

    on_resume = load_flow_file(CONFORMANCE / "pause_on_resume.yaml").tasks[0]
    assert isinstance(on_resume, PauseTask)
    assert [(s.id, s.type, s.required) for s in on_resume.on_resume] == [
        ("asked", "STRING", True),
        ("data", "FILE", False),
    ]


HUMAN_IN_THE_LOOP = """\
id: human_in_the_loop
namespace: company.team
tasks:
  - id: before_approval
    type: io.kestra.plugin.core.debug.Return
    format: Output data that needs to be validated by a human
  - id: pause
    type: io.kestra.plugin.core.flow.Pause
  - id: run_post_approval
    type: io.kestra.plugin.scripts.shell.Commands
    runner: PROCESS
    commands:
      - echo "Manual approval received! Continuing the execution..."
  - id: post_resume
    type: io.kestra.plugin.core.debug.Return
    format: "{{ task.id }} started on {{ taskrun.startDate }} after the Pause"
"""

# Adapted: the Slack notification plugin becomes a plain HTTP request.
VACATION = """\
id: vacation_approval_process
namespace: company.team
inputs:
  - id: request.name
    type: STRING
    defaults: Rick Astley
  - id: request.start_date
    type: DATE
    defaults: 2042-07-01
  - id: request.end_date
    type: DATE
    defaults: 2042-07-07
  - id: slack_webhook_uri
    type: URI
    defaults: https://reqres.in/api/slack
tasks:
  - id: send_approval_request
    type: io.kestra.plugin.core.http.Request
    uri: "{{ inputs.slack_webhook_uri }}"
    method: POST
    body: |
      {
        "channel": "#vacation",
        "text": "Validate holiday request for {{ inputs.request.name }}. To approve the request, click on the `Resume` button here http://localhost:28080/ui/executions/{{flow.namespace}}/{{flow.id}}/{{execution.id}}"
      }
  - id: wait_for_approval
    type: io.kestra.plugin.core.flow.Pause
    onResume:
      - id: approved
        description: Whether to approve the request
        type: BOOLEAN
        defaults: true
      - id: reason
        description: Reason for approval or rejection
        type: STRING
        defaults: Well-deserved vacation
  - id: approve
    type: io.kestra.plugin.core.http.Request
    uri: https://reqres.in/api/products
    method: POST
    contentType: application/json
    body: "{{ inputs.request }}"
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: Status is {{ outputs.wait_for_approval.onResume.reason }}. Process finished with {{ outputs.approve.body }}
"""  # noqa: E501

PAUSE_WARN = """\
id: pause_warn
namespace: company.team
tasks:
  - id: pause
    type: io.kestra.plugin.core.flow.Pause
    pauseDuration: PT5M
    behavior: WARN
  - id: post_resume
    type: io.kestra.plugin.core.debug.Return
    format: "{{ task.id }} started on {{ taskrun.startDate }} after the Pause"
"""


@pytest.mark.parametrize("text", [HUMAN_IN_THE_LOOP, VACATION, PAUSE_WARN])
def test_kestra_documentation_examples_load(text: str) -> None:
    flow = load_flow(text)
    assert flow.namespace == "company.team"


def test_vacation_example_details() -> None:
    flow = load_flow(VACATION)
    assert [spec.id for spec in flow.inputs][:2] == ["request.name", "request.start_date"]
    # YAML 1.2 rules: an unquoted date stays a string.
    assert flow.inputs[1].defaults == "2042-07-01"
    pause = task_at(flow, "tasks[1]")
    assert isinstance(pause, PauseTask) and pause.on_resume[0].defaults is True
    assert flow.tasks[0].type == "http" and flow.tasks[2].type == "http"


# --- aliases --------------------------------------------------------------------------


def test_each_sequential_foreach_and_retry_aliases() -> None:
    flow = load_flow(
        """
id: f
tasks:
  - id: seq
    type: io.kestra.core.tasks.flows.EachSequential
    value: '["a", "b"]'
    tasks:
      - id: echo
        type: io.kestra.core.tasks.debugs.Echo
        format: "{{ taskrun.value }}"
        retry: {type: constant, maxAttempt: 3, interval: PT1S}
  - id: fe
    type: io.kestra.plugin.core.flow.ForEach
    values: "{{ inputs.items }}"
    concurrencyLimit: 4
    tasks:
      - {id: l, type: log, message: x}
  - id: fe2
    type: io.kestra.plugin.core.flow.ForEach
    values: [1, 2]
    tasks:
      - {id: l2, type: log, message: x}
  - id: par
    type: io.kestra.plugin.core.flow.Parallel
    concurrent: 2
    tasks:
      - {id: l3, type: log, message: x}
"""
    )
    seq, fe, fe2, par = flow.tasks
    assert isinstance(seq, ForEachTask) and (seq.values, seq.concurrency) == (["a", "b"], 1)
    echo = seq.tasks[0]
    assert isinstance(echo, LogTask) and echo.message == "{{ taskrun.value }}"
    assert echo.retry is not None and echo.retry.max_attempts == 3
    assert isinstance(fe, ForEachTask) and (fe.values, fe.concurrency) == ("{{ inputs.items }}", 4)
    assert isinstance(fe2, ForEachTask) and fe2.concurrency == 1
    assert par.type == "parallel" and par.concurrency == 2


def test_if_and_switch_with_nested_aliases_and_paths() -> None:
    flow = load_flow(
        """
id: f
tasks:
  - id: check
    type: io.kestra.plugin.core.flow.If
    condition: "{{ inputs.ok }}"
    then:
      - id: yes_log
        type: io.kestra.plugin.core.log.Log
        message: yes
    else:
      - id: ask
        type: io.kestra.plugin.core.flow.Pause
        onPause:
          id: notify
          type: io.kestra.plugin.core.http.Request
          uri: https://example.com/hook
  - id: route
    type: io.kestra.plugin.core.flow.Switch
    value: "{{ inputs.kind }}"
    cases:
      a:
        - {id: case_a, type: io.kestra.plugin.core.debug.Return, format: A}
      b.c:
        - {id: case_bc, type: log, message: B}
    defaults:
      - {id: other, type: log, message: other}
finally:
  - {id: bye, type: log, message: bye}
"""
    )
    paths = {path: task.id for path, task in iter_tasks(flow)}
    assert paths == {
        "tasks[0]": "check",
        "tasks[0].then[0]": "yes_log",
        "tasks[0].else[0]": "ask",
        "tasks[0].else[0].onPause[0]": "notify",
        "tasks[1]": "route",
        "tasks[1].cases.a[0]": "case_a",
        "tasks[1].cases.b.c[0]": "case_bc",
        "tasks[1].defaults[0]": "other",
        "finally[0]": "bye",
    }
    for path, task_id in paths.items():
        assert task_at(flow, path).id == task_id
        assert path_of(flow, task_id) == path
    assert task_at(flow, "tasks[0].else[0].onPause").id == "notify"
    route = flow.tasks[1]
    assert isinstance(route, SwitchTask) and set(route.cases) == {"a", "b.c"}
    assert task_at(flow, "tasks[0].else[0].onPause[0]").type == "http"


@pytest.mark.parametrize("path", ["tasks[9]", "tasks[0].nope[0]", "tasks", "errors[0]", "x"])
def test_task_at_unknown_paths_raise_not_found(path: str) -> None:
    flow = load_flow("id: f\ntasks:\n  - {id: a, type: log, message: m}\n")
    with pytest.raises(NotFound):
        task_at(flow, path)


# --- error messages -------------------------------------------------------------------

APPROVAL = """\
id: approval
namespace: company.team

tasks:
  - id: hello
    type: log
    message: hi

  - id: prepare
    type: return
    format: ready

  - id: wait
    type: io.kestra.plugin.core.flow.Pause
    pauseDuration: P5X
    behavior: WARN
"""


def test_bad_duration_names_file_line_and_yaml_field() -> None:
    assert problems(APPROVAL, "approval.yaml") == [
        "approval.yaml:15 tasks[2].pauseDuration: "
        "'P5X' is not an ISO-8601 duration (e.g. PT30S, PT5M, P1D)"
    ]


def test_field_errors_carry_the_yaml_path() -> None:
    with pytest.raises(FlowError) as caught:
        load_flow(APPROVAL, source="approval.yaml")
    assert caught.value.errors[0].loc == ("tasks", 2, "pauseDuration")


def test_malformed_yaml_reports_line_and_column() -> None:
    (line,) = problems("id: x\ntasks:\n  - id: a\n   type: log\n")
    assert line.startswith("flow.yaml:4:4: invalid YAML: ")


def test_unknown_task_type_lists_known_types() -> None:
    (line,) = problems(
        "id: f\ntasks:\n  - {id: a, type: log, message: m}\n"
        "  - id: b\n    type: io.kestra.plugin.foo.Bar\n"
    )
    assert line.startswith(
        "flow.yaml:5 tasks[1].type: unknown task type 'io.kestra.plugin.foo.Bar'; "
        "known types: log, return,"
    )
    assert "pause" in line and "foreach" in line


def test_duplicate_task_ids_name_both_places() -> None:
    (line,) = problems(
        """id: f
tasks:
  - id: a
    type: log
    message: m
  - id: wait
    type: pause
    onPause:
      id: a
      type: log
      message: m
"""
    )
    assert line == (
        "flow.yaml:9 tasks[1].onPause.id: duplicate task id 'a' "
        "(also used by tasks[0].id at line 3)"
    )


def test_template_syntax_errors_are_found_at_load_time() -> None:
    (line,) = problems("id: f\ntasks:\n  - id: a\n    type: log\n    message: 'hi {{ inputs.x '\n")
    assert line.startswith("flow.yaml:5 tasks[0].message: invalid template 'hi {{ inputs.x '")


def test_echo_and_each_report_the_property_names_the_author_wrote() -> None:
    lines = problems(
        """id: f
tasks:
  - id: e
    type: io.kestra.plugin.core.debug.Echo
    format: {a: 2}
  - id: each
    type: io.kestra.plugin.core.flow.EachParallel
    value: not-json
    tasks:
      - {id: l, type: log, message: m, retry: {maxAttempt: 0}}
"""
    )
    assert lines[0] == "flow.yaml:5 tasks[0].format: expected a string or a list, got {'a': 2}"
    assert lines[1] == (
        "flow.yaml:8 tasks[1].value: values must be a list, a JSON array or a {{ … }} template"
    )
    assert lines[2].startswith("flow.yaml:10 tasks[1].tasks[0].retry.maxAttempt: ")


def test_every_problem_is_reported_sorted_by_line() -> None:
    lines = problems(
        """id: 'bad id'
inputs:
  - id: n
    type: NUMBER
  - id: n
    type: INT
tasks:
  - id: a
    type: log
  - id: b
    type: log
    message: m
    colour: blue
  - id: c
    type: io.kestra.plugin.core.flow.Pause
    behavior: SOMETIMES
"""
    )
    assert lines == [
        "flow.yaml:1 id: 'bad id' is not a valid id: use letters, digits, '_' and '-', "
        "starting with a letter or digit",
        "flow.yaml:4 inputs[0].type: unknown input type 'NUMBER'; allowed types: ARRAY, BOOL, "
        "BOOLEAN, DATE, DATETIME, DURATION, EMAIL, ENUM, FILE, FLOAT, INT, JSON, MULTISELECT, "
        "OBJECT, SECRET, SELECT, STRING, TABLE, TIME, URI, YAML",
        "flow.yaml:5 inputs[1].id: input id 'n' is declared twice",
        "flow.yaml:8 tasks[0].message: required property is missing",
        "flow.yaml:13 tasks[1].colour: unknown property 'colour'; known properties: allowFailure, "
        "allowWarning, description, disabled, id, level, logToFile, message, retry, runIf, "
        "timeout, type",
        "flow.yaml:16 tasks[2].behavior: 'SOMETIMES' is not allowed; "
        "expected 'RESUME', 'WARN', 'FAIL', 'CANCEL' or a {{ … }} template",
    ]


def test_input_defaults_are_checked_where_they_are_written() -> None:
    (line,) = problems(
        "id: f\ninputs:\n  - id: n\n    type: INT\n    defaults: many\n"
        "tasks:\n  - {id: a, type: log, message: m}\n"
    )
    assert line == "flow.yaml:5 inputs[0].defaults: expected an integer, got 'many'"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "flow.yaml: the flow is empty"),
        ("- a\n", "flow.yaml: a flow must be a mapping"),
        ("id: x\n---\nid: y\n", "flow.yaml:2:1: a flow file holds exactly one YAML document"),
        ("id: x\nid: y\n", "flow.yaml:2 id: duplicate key 'id' (first at line 1)"),
        ("id: x\n1.5: y\n", "flow.yaml:2: key '1.5' must be a string"),
        ("id: !!binary aGk=\n", "flow.yaml:1 id: unsupported YAML tag"),
        ("id: x\x07\n", "characters are not allowed (character #x0007)"),
        ("x: " + "[" * 150 + "]" * 150, "refused: nesting deeper than 100 levels"),
        ("a: &a [*a]\n", "refused: nesting deeper than 100 levels"),
    ],
)
def test_hostile_or_malformed_documents(text: str, expected: str) -> None:
    with pytest.raises(FlowError) as caught:
        load_flow(text, source="flow.yaml")
    assert caught.value.message.startswith(expected) or expected in caught.value.message


def test_switch_case_keys_may_be_numbers_and_booleans_read_as_written() -> None:
    """Kestra's flows write ``cases: {1: …, true: …}``; a float key is still refused."""
    flow = load_flow(
        "id: f\ntasks:\n  - id: s\n    type: switch\n    value: x\n    cases:\n"
        "      1:\n        - {id: a, type: log, message: m}\n"
        "      true:\n        - {id: b, type: log, message: m}\n"
    )
    assert list(flow.tasks[0].cases) == ["1", "true"]  # type: ignore[union-attr]
    (line,) = problems(
        "id: f\ntasks:\n  - id: s\n    type: switch\n    value: x\n    cases:\n"
        "      1.5:\n        - {id: a, type: log, message: m}\n"
    )
    assert line == "flow.yaml:7 tasks[0].cases: key '1.5' must be a string (quote it)"


def test_billion_laughs_is_refused_quickly() -> None:
    layers = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for index, name in enumerate("bcdefghij"):
        previous = "abcdefghij"[index]
        layers.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 10) + "]")
    started = time.monotonic()
    with pytest.raises(FlowError, match="refused: more than 100000 nodes"):
        load_flow("\n".join(layers))
    assert time.monotonic() - started < 2


def test_oversized_documents_are_refused(tmp_path: Path) -> None:
    big = "id: x\n# " + "x" * MAX_FLOW_BYTES + "\n"
    with pytest.raises(FlowError, match="limit"):
        load_flow(big)
    path = tmp_path / "big.yaml"
    path.write_text(big)
    with pytest.raises(FlowError, match=r"big\.yaml: refused"):
        load_flow_file(path)


def test_unreadable_files_are_flow_errors(tmp_path: Path) -> None:
    with pytest.raises(FlowError, match="cannot read"):
        load_flow_file(tmp_path / "missing.yaml")
    (tmp_path / "latin.yaml").write_bytes(b"id: caf\xe9\n")
    with pytest.raises(FlowError, match="not UTF-8"):
        load_flow_file(tmp_path / "latin.yaml")


def test_yaml_12_scalars_and_merge_keys() -> None:
    assert load_yaml_data("a: yes\nb: on\nc: 010\nd: 10:30\ne: 2042-07-01\nf: true\ng: 0x1F") == {
        "a": "yes",
        "b": "on",
        "c": 10,
        "d": "10:30",
        "e": "2042-07-01",
        "f": True,
        "g": 31,
    }
    data = load_yaml_data("base: &b {x: 1, y: 2}\nitem:\n  <<: *b\n  y: 3\n")
    assert data["item"] == {"x": 1, "y": 3}


# --- flow_from_dict -------------------------------------------------------------------


def test_flow_from_dict_uses_the_same_rules_without_lines() -> None:
    flow = flow_from_dict(
        {"id": "f", "tasks": [{"id": "p", "type": "io.kestra.plugin.core.flow.Pause"}]}
    )
    assert isinstance(flow, Flow) and flow.tasks[0].type == "pause"
    with pytest.raises(FlowError) as caught:
        flow_from_dict({"id": "f", "tasks": [{"id": "p", "type": "pause", "delay": "P5X"}]})
    assert caught.value.message == (
        "<flow> tasks[0].delay: 'P5X' is not an ISO-8601 duration (e.g. PT30S, PT5M, P1D)"
    )


def test_flow_from_dict_refuses_non_string_keys_and_cycles() -> None:
    with pytest.raises(FlowError, match="must be a string"):
        flow_from_dict({"id": "f", 1: 2})  # type: ignore[dict-item]
    cyclic: dict[str, Any] = {"id": "f"}
    cyclic["tasks"] = [cyclic]
    with pytest.raises(FlowError, match="refused"):
        flow_from_dict(cyclic)


# --- properties -----------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["id", "type", "tasks", "message", "pauseDuration", "x", "onPause"])
            | st.text(max_size=6),
            inner,
            max_size=5,
        )
    ),
    max_leaves=25,
)
task_types = st.sampled_from(
    [
        "log",
        "pause",
        "io.kestra.plugin.core.flow.Pause",
        "io.kestra.plugin.core.flow.If",
        "io.kestra.plugin.core.flow.EachParallel",
        "switch",
        "nope",
    ]
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(st.sampled_from(["id", "tasks", "inputs", "errors"]), json_values) | json_values
)
def test_junk_dicts_raise_only_flow_errors(data: Any) -> None:
    with contextlib.suppress(FlowError):
        flow_from_dict(data)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.fixed_dictionaries(
            {"id": st.text(max_size=5), "type": task_types},
            optional={
                "tasks": json_values,
                "value": json_values,
                "onResume": json_values,
                "message": json_values,
                "then": json_values,
            },
        ),
        max_size=3,
    )
)
def test_junk_task_lists_raise_only_flow_errors(tasks: list[Any]) -> None:
    with contextlib.suppress(FlowError):
        load_flow(yaml.safe_dump({"id": "f", "tasks": tasks}))


@settings(max_examples=200)
@given(st.text(alphabet=st.sampled_from(list("ab:-[]{}&*!|>'\"#\n\t ?<%@`,.0123")), max_size=60))
def test_junk_yaml_text_raises_only_flow_errors(text: str) -> None:
    with contextlib.suppress(FlowError):
        load_flow(text)


@pytest.mark.parametrize(
    "text",
    [
        APPROVAL,
        "id: x\n---\nid: y\n",
        "x: " + "[" * 150 + "]" * 150,
        "id: x\ntasks:\n  - id: a\n   type: log\n",
        "a: &a [x, x]\nb: [*a, *a]\n",
    ],
)
def test_pure_python_yaml_fallback_reports_the_same(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def outcome() -> str:
        try:
            return repr(load_flow(text))
        except FlowError as exc:
            return exc.message

    with_libyaml = outcome()
    monkeypatch.setattr(yaml_document, "_C_LOADER", None)
    # libyaml words syntax errors differently; the place must be the same.
    assert outcome().split("invalid YAML:")[0] == with_libyaml.split("invalid YAML:")[0]
