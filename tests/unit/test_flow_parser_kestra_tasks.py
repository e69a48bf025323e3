"""Kestra's core tasks and flow properties, refused with file:line field: message when wrong."""

from __future__ import annotations

import pytest

from pausepoint.errors import FlowError
from pausepoint.flow import load_flow


def problems(text: str) -> list[str]:
    with pytest.raises(FlowError) as caught:
        load_flow(text, source="flow.yaml")
    return caught.value.message.splitlines()


def test_a_dag_cycle_and_unknown_dependencies_are_each_named() -> None:
    assert problems(
        """id: d
namespace: n
tasks:
  - id: dag
    type: io.kestra.plugin.core.flow.Dag
    tasks:
      - task: {id: a, type: log, message: a}
        dependsOn: [c]
      - task: {id: b, type: log, message: b}
        dependsOn: [a, nope, b]
      - task: {id: c, type: log, message: c}
        dependsOn: [b]
"""
    ) == [
        "flow.yaml:8 tasks[0].tasks[0].dependsOn: the dependencies form a cycle: a -> c -> b -> a",
        "flow.yaml:10 tasks[0].tasks[1].dependsOn[1]: 'nope' is not a task of this Dag; "
        "its tasks: a, b, c",
        "flow.yaml:10 tasks[0].tasks[1].dependsOn[2]: task 'b' cannot depend on itself",
    ]


def test_every_unsupported_kestra_task_is_listed_not_only_the_first() -> None:
    assert problems(
        """id: d
namespace: n
tasks:
  - id: child
    type: io.kestra.plugin.core.flow.Subflow
    namespace: n
    flowId: other
    wait: sometimes
  - id: each
    type: io.kestra.plugin.core.flow.ForEachItem
  - id: approve
    type: io.kestra.plugin.core.flow.Approval
    denyBehavior: MAYBE
  - id: query
    type: io.kestra.plugin.jdbc.postgresql.Query
"""
    ) == [
        "flow.yaml:8 tasks[0].wait: expected a boolean, got 'sometimes'",
        "flow.yaml:9 tasks[1].namespace: required property is missing",
        "flow.yaml:9 tasks[1].flowId: required property is missing",
        "flow.yaml:9 tasks[1].items: required property is missing",
        "flow.yaml:13 tasks[2].denyBehavior: 'MAYBE' is not allowed; expected 'CONTINUE', "
        "'WARN', 'FAIL', 'SUCCEED', 'CANCEL' or 'KILL'",
        "flow.yaml:15 tasks[3].type: unknown task type 'io.kestra.plugin.jdbc.postgresql.Query'; "
        "known types: " + problems_known_types(),
    ]


def problems_known_types() -> str:
    from pausepoint.flow.aliases import SHORT_TYPES

    return ", ".join(SHORT_TYPES)


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        (
            "  - id: t\n    type: io.kestra.plugin.core.execution.Exit\n    state: DONE\n",
            "flow.yaml:6 tasks[0].state: 'DONE' is not an exit state; "
            "expected one of ('SUCCESS', 'WARNING', 'KILLED', 'FAILED', 'CANCELED', 'CANCELLED')",
        ),
        (
            "  - id: t\n    type: io.kestra.plugin.core.flow.Sleep\n    duration: 5 minutes\n",
            "flow.yaml:6 tasks[0].duration: '5 minutes' is not an ISO-8601 duration",
        ),
        (
            "  - id: t\n    type: log\n    message: x\n    retry: {type: random, maxAttempts: 2}\n",
            "flow.yaml:7 tasks[0].retry: a random retry needs minInterval and maxInterval",
        ),
        (
            "  - id: t\n    type: io.kestra.plugin.core.flow.WaitFor\n    condition: x\n"
            "    checkFrequency: {every: PT1S}\n    tasks: [{id: l, type: log, message: x}]\n",
            "flow.yaml:7 tasks[0].checkFrequency.every: unknown property 'every'",
        ),
        (
            "  - id: t\n    type: log\n    message: '{{ 1 +  }}'\n",
            "flow.yaml:6 tasks[0].message: invalid template",
        ),
    ],
)
def test_bad_task_properties_name_the_line_and_field(snippet: str, expected: str) -> None:
    lines = problems(f"id: d\nnamespace: n\ntasks:\n{snippet}")
    assert len(lines) == 1
    assert lines[0].startswith(expected), lines[0]


def test_bad_flow_properties_name_the_line_and_field() -> None:
    assert problems(
        """id: d
namespace: n
labels:
  - key: team
    value: a
  - key: team
    value: b
pluginDefaults:
  - type: io.kestra.plugin.core.log.Log
    value: {level: WARN}
concurrency:
  limit: 0
  behavior: WAIT
outputs:
  - id: total
    type: NUMBER
    value: 1
tasks:
  - id: l
    type: log
    message: x
"""
    ) == [
        "flow.yaml:6 labels[1].key: duplicate label 'team'",
        "flow.yaml:10 pluginDefaults[0].value: unknown property 'value'; "
        "known properties: forced, type, values",
        "flow.yaml:12 concurrency.limit: input should be greater than or equal to 1, got 0",
        "flow.yaml:13 concurrency.behavior: 'WAIT' is not allowed; "
        "expected 'QUEUE', 'CANCEL' or 'FAIL'",
        "flow.yaml:16 outputs[0].type: unknown input type 'NUMBER'; allowed types: ARRAY, BOOL, "
        "BOOLEAN, DATE, DATETIME, DURATION, EMAIL, ENUM, FILE, FLOAT, INT, JSON, MULTISELECT, "
        "OBJECT, SECRET, SELECT, STRING, TABLE, TIME, URI, YAML",
    ]


@pytest.mark.parametrize(
    ("properties", "expected"),
    [
        (
            "    containerImage: python:3.12\n",
            "flow.yaml:7 tasks[0].containerImage: pausepoint runs shell tasks as local processes",
        ),
        (
            "    taskRunner:\n      type: io.kestra.plugin.scripts.runner.docker.Docker\n",
            "flow.yaml:8 tasks[0].taskRunner.type: io.kestra.plugin.scripts.runner.docker.Docker "
            "is not supported: pausepoint runs shell tasks as local processes",
        ),
        (
            "    inputFiles:\n      ../escape.txt: x\n",
            "flow.yaml:7 tasks[0].inputFiles: '../escape.txt' must be a relative path that stays",
        ),
    ],
)
def test_script_properties_pausepoint_cannot_honour_are_refused(
    properties: str, expected: str
) -> None:
    lines = problems(
        "id: d\nnamespace: n\ntasks:\n  - id: s\n"
        "    type: io.kestra.plugin.scripts.shell.Commands\n    commands: [ls]\n" + properties
    )
    assert len(lines) == 1
    assert lines[0].startswith(expected), lines[0]


def test_working_directory_output_files_must_stay_inside_it() -> None:
    lines = problems(
        "id: d\nnamespace: n\ntasks:\n  - id: wd\n"
        "    type: io.kestra.plugin.core.flow.WorkingDirectory\n"
        "    outputFiles:\n      - ok.txt\n      - ../../etc/passwd\n"
        "    tasks:\n      - id: t\n"
        "        type: io.kestra.plugin.core.log.Log\n        message: m\n"
    )
    assert len(lines) == 1
    assert lines[0].startswith("flow.yaml:6 tasks[0].outputFiles: "), lines[0]
    assert "'../../etc/passwd' must stay inside the working directory" in lines[0]
