"""Every copied flow of Kestra's test suite loads, or is refused for its listed reason.

The flows are in tests/kestra/valids/ (Kestra's, Apache-2.0; see the README
there). A flow that starts to load, or fails for another reason, fails this
test: the table below is the honest list of what pausepoint cannot load yet.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pausepoint.errors import FlowError
from pausepoint.flow import load_flow_file

VALIDS = Path(__file__).resolve().parents[1] / "kestra" / "valids"

# Kestra's own test suite's plugins: they exist only inside Kestra's test JVM.
TEST_PLUGIN = "unknown task type 'io.kestra.core."
APPROVALS = "is not supported yet (it comes with approvals)"
NEW_EXECUTION_RETRY = "retry.behavior"

REFUSED: dict[str, str] = {
    "additional-plugin.yaml": TEST_PLUGIN,
    "alias-task.yaml": TEST_PLUGIN,
    "alias-trigger.yaml": "unknown trigger type 'io.kestra.core.runners.test.trigger.Alias'",
    "cache.yaml": TEST_PLUGIN,
    "dynamic-task.yaml": TEST_PLUGIN,
    "encrypted-string.yaml": TEST_PLUGIN,
    "exception-with-output.yaml": TEST_PLUGIN,
    "flow-concurrency-cancel.yml": TEST_PLUGIN,
    "flow-concurrency-fail.yml": TEST_PLUGIN,
    "flow-concurrency-queue.yml": TEST_PLUGIN,
    "after-execution-listener.yaml": "Kestra's listeners (deprecated in Kestra",
    "flow-concurrency-sla-assert-cancel.yml": "Kestra's sla (service-level agreements)",
    **{
        name: APPROVALS
        for name in (
            "approval-auto-approve.yaml",
            "approval-basic.yaml",
            "approval-deny-behavior-cancel.yaml",
            "approval-expire.yaml",
            "approval-inputs.yaml",
            "approval-parallel.yaml",
        )
    },
    "retry-failed-flow-attempts.yml": NEW_EXECUTION_RETRY,
    "retry-new-execution-flow-attempts.yml": NEW_EXECUTION_RETRY,
    "retry-new-execution-flow-duration.yml": NEW_EXECUTION_RETRY,
    "retry-new-execution-task-attempts.yml": NEW_EXECUTION_RETRY,
    "retry-new-execution-task-duration.yml": NEW_EXECUTION_RETRY,
    "working-directory-inputs.yml": "unknown task type 'io.kestra.plugin.core.storage.LocalFiles'",
    # SleepTest's flow: Sleep's `delay` and a `core.scripts.Shell` type nothing else names.
    "sleep-task-flow.yaml": "delay: unknown property",
    "flow-concurrency-queue-duration.yml": "concurrency.duration: unknown property",
    "flow-concurrency-queue-limit.yml": "concurrency.queueLimit: unknown property",
    "flow-concurrency-queue-size.yml": "concurrency.queueSize: unknown property",
    "dag-fail-fast-cancelled.yaml": "onChildFailure: unknown property",
    "finally-eachparallel.yaml": "childFailurePolicy: unknown property",
    # Kestra's flows of its first versions (org.kestra, Handlebars, numeric task ids).
    "allow-failure.yaml": "tasks[0].id: expected a string, got 1",
    "each-object.yaml": "invalid template '{{isJson taskrun.value}}'",
    # Meant to fail when it runs, in Kestra; refused when it loads, here.
    "dag-invalid-concurrent.yaml": "concurrent: expected an integer, got '{{ 0 - 1 }}'",
}

FLOWS = sorted(path.name for path in VALIDS.glob("*.y*ml"))
# What share of the copied flows load today; it may only go up.
LOADING_FLOOR = 0.7


def first_problem(name: str) -> str | None:
    try:
        load_flow_file(VALIDS / name)
    except FlowError as error:
        return error.message
    return None


def test_the_copies_are_there() -> None:
    assert len(FLOWS) >= 130
    assert set(REFUSED) <= set(FLOWS)


@pytest.mark.parametrize("name", FLOWS)
def test_a_kestra_flow_loads_or_is_refused_for_its_listed_reason(name: str) -> None:
    problem = first_problem(name)
    if name in REFUSED:
        assert problem is not None, f"{name} loads now: take it off REFUSED"
        assert REFUSED[name] in problem, problem
    else:
        assert problem is None, problem


def test_the_share_of_kestras_flows_that_load() -> None:
    loading = [name for name in FLOWS if name not in REFUSED]
    share = len(loading) / len(FLOWS)
    assert share >= LOADING_FLOOR, f"{len(loading)} of {len(FLOWS)} load ({share:.0%})"
