"""Kestra's core tasks as the engine does them: Fail, Exit, Sleep, Labels, AllowFailure,
Dag, WaitFor, and the task and flow properties that come with them (runIf, allowWarning,
retry maxDuration, typed list outputs, variables, pluginDefaults).

Every test runs through the simulated runtime, which checks the control contract's
invariants after each step.
"""

from __future__ import annotations

import pytest

from pausepoint.engine.model import CancelTask, ExecutionStatus

from .engine_driver import Driver

S = ExecutionStatus


def states(driver: Driver) -> list[tuple[str, str]]:
    return [(run["task_id"], run["state"]) for run in driver.state["task_runs"].values()]


def leaves_started(driver: Driver) -> list[str]:
    return sorted(
        event.data["task_id"]
        for event in driver.events_of("task.started")
        if event.data["type"] == "python"
    )


# -- Fail ------------------------------------------------------------------------------


def test_fail_without_condition_fails_with_its_rendered_message_and_errors_run() -> None:
    driver = Driver.of(
        """
id: f
tasks:
  - id: stop
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: "refused for {{ flow.id }}"
  - id: never
    type: log
    message: x
errors:
  - id: handle
    type: log
    message: "{{ outputs }}"
"""
    )
    driver.start()
    assert driver.drive_to_end() is S.FAILED
    assert driver.run_of("stop")["error"] == "refused for f"
    assert states(driver) == [("stop", "FAILED"), ("handle", "SUCCESS")]


@pytest.mark.parametrize(
    ("condition", "fails"),
    [
        ("{{ 1 == 2 }}", False),
        ("{{ 1 == 1 }}", True),
        ("false", False),
        ("0", False),
        ("", False),
        ("no", True),
        ("{{ inputs.n > 3 }}", True),
    ],
)
def test_fail_condition_follows_kestras_truth_rule(condition: str, fails: bool) -> None:
    driver = Driver.of(
        {
            "id": "f",
            "inputs": [{"id": "n", "type": "INT", "defaults": 5}],
            "tasks": [
                {
                    "id": "check",
                    "type": "io.kestra.plugin.core.execution.Fail",
                    "condition": condition,
                },
            ],
        },
        inputs={"n": 5},
    )
    driver.start()
    assert driver.drive_to_end() is (S.FAILED if fails else S.COMPLETED)
    assert driver.run_of("check")["state"] == ("FAILED" if fails else "SUCCESS")


# -- Exit ------------------------------------------------------------------------------

EXIT_FLOW = """
id: e
tasks:
  - id: parallel
    type: parallel
    tasks:
      - id: slow
        type: python
        function: "m:f"
      - id: seq
        type: sequential
        tasks:
          - id: exit
            type: io.kestra.plugin.core.execution.Exit
            state: {state}
          - id: never
            type: log
            message: x
  - id: after
    type: log
    message: x
finally:
  - id: cleanup
    type: log
    message: x
"""


@pytest.mark.parametrize(
    ("state", "run_state", "status"),
    [
        ("SUCCESS", "SUCCESS", S.COMPLETED),
        ("WARNING", "WARNING", S.WARNING),
        ("FAILED", "FAILED", S.FAILED),
        ("CANCELED", "CANCELLED", S.CANCELLED),
        ("KILLED", "CANCELLED", S.TERMINATED),
    ],
)
def test_exit_ends_its_parents_and_the_execution_in_its_state(
    state: str, run_state: str, status: ExecutionStatus
) -> None:
    driver = Driver.of(EXIT_FLOW.format(state=state))
    driver.start()
    assert driver.run_of("exit")["state"] == run_state
    assert driver.run_of("seq")["state"] == run_state
    assert driver.run_of("parallel")["state"] == run_state
    if state == "KILLED":
        # The sibling, started in the same step, never reaches a runtime.
        assert driver.run_of("slow")["state"] == "CANCELLED"
        assert driver.outstanding == {}
    else:
        # As in Kestra, what runs is not stopped: the execution ends once it is done.
        assert driver.status() is S.RUNNING
        driver.complete("slow")
        assert driver.run_of("slow")["state"] == "SUCCESS"
    assert driver.status() is status
    # Nothing after the Exit runs, not even finally.
    assert {run["task_id"] for run in driver.state["task_runs"].values()} == {
        "parallel",
        "slow",
        "seq",
        "exit",
    }


def test_exit_state_can_be_a_template_and_a_bad_one_fails_the_task() -> None:
    flow = {
        "id": "e",
        "inputs": [{"id": "s", "type": "STRING"}],
        "tasks": [
            {
                "id": "exit",
                "type": "io.kestra.plugin.core.execution.Exit",
                "state": "{{ inputs.s }}",
            }
        ],
    }
    driver = Driver.of(flow, inputs={"s": "warning"})
    driver.start()
    assert driver.status() is S.WARNING
    driver = Driver.of(flow, inputs={"s": "SOMETIMES"})
    driver.start()
    assert driver.status() is S.FAILED
    assert "'SOMETIMES' is not an exit state" in driver.run_of("exit")["error"]


def test_exit_killed_kills_the_tasks_already_running() -> None:
    driver = Driver.of(
        """
id: e
tasks:
  - id: parallel
    type: parallel
    tasks:
      - id: slow
        type: python
        function: "m:f"
      - id: seq
        type: sequential
        tasks:
          - id: first
            type: python
            function: "m:f"
          - id: exit
            type: io.kestra.plugin.core.execution.Exit
            state: KILLED
"""
    )
    driver.start()
    slow = driver.run_of("slow")
    step = driver.complete("first")
    assert driver.status() is S.TERMINATED
    assert CancelTask(slow["id"], kill=True) in step.transition.actions
    assert driver.outstanding == {}
    assert driver.events_of("workflow.terminated")[0].data["by"] == "task 'exit'"


# -- Sleep -----------------------------------------------------------------------------

SLEEP_FLOW = """
id: s
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT5M
  - id: after
    type: log
    message: x
"""


def test_sleep_is_a_durable_timer_that_a_crash_does_not_lose() -> None:
    driver = Driver.of(SLEEP_FLOW)
    driver.start()
    assert driver.run_of("nap")["state"] == "RUNNING"
    assert driver.timers == {f"sleep:{driver.run_of('nap')['id']}": driver.now + 300}
    driver.recover()  # the runtime lost its timers: recovery arms them again
    assert list(driver.timers.values()) == [1300.0]
    driver.fire_due_timers(advance_clock_to=1300.0)
    assert driver.run_of("nap")["state"] == "SUCCESS"
    assert driver.drive_to_end() is S.COMPLETED


def test_a_pause_during_sleep_lands_at_once_and_the_sleep_still_ends_on_time() -> None:
    driver = Driver.of(SLEEP_FLOW)
    driver.start()
    assert driver.pause("hold").applied
    assert driver.status() is S.PAUSED
    driver.fire_due_timers(advance_clock_to=1300.0)
    assert driver.run_of("nap")["state"] == "SUCCESS"
    assert driver.runs_of("after") == []  # paused: nothing new starts
    assert driver.resume().applied
    assert driver.drive_to_end() is S.COMPLETED


def test_cancel_during_sleep_clears_its_timer() -> None:
    driver = Driver.of(SLEEP_FLOW)
    driver.start()
    assert driver.cancel("enough").applied
    assert driver.status() is S.CANCELLED
    assert driver.timers == {}
    assert driver.run_of("nap")["state"] == "CANCELLED"


# -- Labels ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "labels",
    [
        {"stage": "{{ flow.id }}", "n": 2},
        [{"key": "stage", "value": "{{ flow.id }}"}, {"key": "n", "value": 2}],
    ],
)
def test_labels_task_sets_the_execution_labels_in_both_forms(labels: object) -> None:
    driver = Driver.of(
        {
            "id": "l",
            "labels": [{"key": "team", "value": "a"}],
            "tasks": [
                {"id": "tag", "type": "io.kestra.plugin.core.execution.Labels", "labels": labels}
            ],
        }
    )
    driver.state["labels"] = {"team": "a"}
    driver.start()
    assert driver.status() is S.COMPLETED
    assert driver.state["labels"] == {"team": "a", "stage": "l", "n": "2"}
    assert driver.events_of("execution.labeled")[0].data["labels"] == {"stage": "l", "n": "2"}


# -- AllowFailure and allowWarning ----------------------------------------------------------


def test_allow_failure_ends_in_warning_and_the_flow_goes_on() -> None:
    driver = Driver.of(
        """
id: a
tasks:
  - id: tolerant
    type: io.kestra.plugin.core.flow.AllowFailure
    tasks:
      - id: bad
        type: io.kestra.plugin.core.execution.Fail
      - id: skipped
        type: log
        message: x
  - id: after
    type: log
    message: x
"""
    )
    driver.start()
    assert driver.drive_to_end() is S.WARNING
    assert states(driver) == [("tolerant", "WARNING"), ("bad", "FAILED"), ("after", "SUCCESS")]


def test_allow_warning_turns_a_warning_into_success() -> None:
    driver = Driver.of(
        """
id: a
tasks:
  - id: tolerant
    type: io.kestra.plugin.core.flow.AllowFailure
    allowWarning: true
    tasks:
      - id: bad
        type: io.kestra.plugin.core.execution.Fail
"""
    )
    driver.start()
    assert driver.drive_to_end() is S.COMPLETED
    assert driver.run_of("tolerant")["state"] == "SUCCESS"


# -- runIf -----------------------------------------------------------------------------


def test_run_if_false_skips_the_task_and_a_bad_template_fails_it() -> None:
    driver = Driver.of(
        """
id: r
tasks:
  - id: skipped
    type: log
    message: x
    runIf: "{{ 1 > 2 }}"
  - id: ran
    type: log
    message: x
    runIf: "true"
  - id: broken
    type: log
    message: x
    runIf: "{{ outputs.nothing.here }}"
"""
    )
    driver.start()
    assert driver.drive_to_end() is S.FAILED
    assert states(driver) == [("skipped", "SKIPPED"), ("ran", "SUCCESS"), ("broken", "FAILED")]
    assert "runIf" in driver.run_of("broken")["error"]


# -- Dag -------------------------------------------------------------------------------

DAG_FLOW = """
id: d
tasks:
  - id: dag
    type: io.kestra.plugin.core.flow.Dag
    concurrent: {concurrent}
    tasks:
      - task: {{id: report, type: python, function: "m:f"}}
        dependsOn: [extract, transform]
      - task: {{id: extract, type: python, function: "m:f"}}
      - task: {{id: transform, type: python, function: "m:f"}}
        dependsOn: [extract]
      - task: {{id: audit, type: python, function: "m:f"}}
"""


def test_dag_starts_each_task_once_its_dependencies_succeeded() -> None:
    driver = Driver.of(DAG_FLOW.format(concurrent=0))
    driver.start()
    assert leaves_started(driver) == ["audit", "extract"]
    driver.complete("extract")
    assert leaves_started(driver) == ["audit", "extract", "transform"]
    driver.complete("transform")
    assert "report" in leaves_started(driver)
    assert driver.drive_to_end() is S.COMPLETED


def test_dag_concurrent_limits_the_tasks_at_once() -> None:
    driver = Driver.of(DAG_FLOW.format(concurrent=1))
    driver.start()
    assert leaves_started(driver) == ["extract"]
    assert driver.drive_to_end() is S.COMPLETED
    assert len(leaves_started(driver)) == 4


def test_dag_failure_starts_nothing_new_and_fails_the_dag() -> None:
    driver = Driver.of(DAG_FLOW.format(concurrent=0))
    driver.start()
    driver.fail("extract")
    assert driver.run_of("dag")["state"] == "RUNNING"  # audit is still running
    driver.complete("audit")
    assert driver.status() is S.FAILED
    assert leaves_started(driver) == ["audit", "extract"]


# -- WaitFor ---------------------------------------------------------------------------

WAIT_FLOW = """
id: w
tasks:
  - id: poll
    type: io.kestra.plugin.core.flow.WaitFor
    condition: "{{{{ outputs.check.vars.status != 'done' }}}}"
    failOnMaxReached: {fail}
    checkFrequency:
      maxIterations: 3
      interval: PT10S
    tasks:
      - id: check
        type: python
        function: "m:f"
        kwargs:
          attempt: "{{{{ outputs.poll.iterationCount }}}}"
"""


def test_wait_for_runs_its_tasks_again_until_the_condition_is_false() -> None:
    driver = Driver.of(WAIT_FLOW.format(fail="false"))
    driver.start()
    first = driver.outstanding_of("check")[0]
    assert first.spec["kwargs"]["attempt"] == 1
    driver.complete("check", {"vars": {"status": "pending"}})
    assert driver.outstanding_of("check") == []  # waits the interval on a durable timer
    driver.fire_due_timers(advance_clock_to=driver.now + 10)
    assert driver.outstanding_of("check")[0].spec["kwargs"]["attempt"] == 2
    driver.complete("check", {"vars": {"status": "done"}})
    assert driver.status() is S.COMPLETED
    assert driver.run_of("poll")["outputs"] == {"iterationCount": 2}
    assert len(driver.runs_of("check")) == 2


@pytest.mark.parametrize(("fail", "status"), [("false", S.COMPLETED), ("true", S.FAILED)])
def test_wait_for_stops_at_max_iterations(fail: str, status: ExecutionStatus) -> None:
    driver = Driver.of(WAIT_FLOW.format(fail=fail))
    driver.start()
    for _ in range(3):
        driver.complete("check", {"vars": {"status": "pending"}})
        driver.fire_due_timers(advance_clock_to=driver.now + 10)
    assert driver.status() is status
    assert len(driver.runs_of("check")) == 3


# -- retry -----------------------------------------------------------------------------


def test_retry_max_duration_stops_retrying_once_that_long_has_passed() -> None:
    driver = Driver.of(
        """
id: r
tasks:
  - id: flaky
    type: python
    function: "m:f"
    retry:
      type: constant
      interval: PT20S
      maxDuration: PT1M
"""
    )
    driver.start()
    attempts = 0
    while driver.outstanding_of("flaky"):
        attempts += 1
        driver.fail("flaky")
        driver.fire_due_timers(advance_clock_to=driver.now + 20)
    assert driver.status() is S.FAILED
    assert attempts == 3  # at 0, 20 and 40 seconds: a fourth would start past one minute


def test_random_retry_waits_within_its_bounds_the_same_each_replay() -> None:
    flow = """
id: r
tasks:
  - id: flaky
    type: python
    function: "m:f"
    retry: {type: random, minInterval: PT10S, maxInterval: PT20S, maxAttempts: 2}
"""
    deadlines = []
    for _ in range(2):
        driver = Driver.of(flow)
        driver.start()
        driver.fail("flaky")
        (deadline,) = driver.timers.values()
        deadlines.append(deadline - driver.now)
    assert 10 <= deadlines[0] <= 20
    assert deadlines[0] == deadlines[1]


def test_warning_on_retry_ends_a_retried_success_in_warning() -> None:
    driver = Driver.of(
        """
id: r
tasks:
  - id: flaky
    type: python
    function: "m:f"
    retry: {type: constant, interval: PT1S, maxAttempt: 3, warningOnRetry: true}
"""
    )
    driver.start()
    driver.fail("flaky")
    driver.fire_due_timers(advance_clock_to=driver.now + 1)
    driver.complete("flaky")
    assert driver.status() is S.WARNING


# -- flow properties --------------------------------------------------------------------


def test_typed_list_outputs_are_coerced_and_a_bad_value_fails_naming_it() -> None:
    flow = {
        "id": "o",
        "variables": {"answer": "42"},
        "inputs": [{"id": "ratio", "type": "STRING"}],
        "tasks": [{"id": "noop", "type": "log", "message": "x"}],
        "outputs": [
            {"id": "answer", "type": "INT", "value": "{{ vars.answer }}"},
            {"id": "ratio", "type": "FLOAT", "value": "{{ inputs.ratio }}"},
        ],
    }
    driver = Driver.of(flow, inputs={"ratio": "0.5"})
    driver.start()
    assert driver.drive_to_end() is S.COMPLETED
    assert driver.state["result"] == {"answer": 42, "ratio": 0.5}
    driver = Driver.of(flow, inputs={"ratio": "half"})
    driver.start()
    assert driver.drive_to_end() is S.FAILED
    assert "outputs.ratio" in driver.state["error"]["message"]


def test_plugin_defaults_fill_properties_and_forced_ones_win() -> None:
    driver = Driver.of(
        """
id: p
pluginDefaults:
  - type: io.kestra.plugin.core.log
    values: {message: "default message", level: WARN}
  - type: io.kestra.plugin.core.log.Log
    forced: true
    values: {level: ERROR}
tasks:
  - id: own
    type: io.kestra.plugin.core.log.Log
    message: own message
    level: DEBUG
  - id: filled
    type: io.kestra.plugin.core.log.Log
"""
    )
    own, filled = driver.flow.tasks
    assert (own.message, own.level) == ("own message", "ERROR")  # type: ignore[union-attr]
    assert (filled.message, filled.level) == ("default message", "ERROR")  # type: ignore[union-attr]


# -- local errors and finally ------------------------------------------------------------

LOCAL_HANDLERS = """
id: local
tasks:
  - id: seq
    type: io.kestra.plugin.core.flow.Sequential
    tasks:
      - id: work
        type: python
        function: "m:f"
      - id: skipped
        type: log
        message: x
    errors:
      - id: on_error
        type: log
        message: "{{ outputs }}"
    finally:
      - id: cleanup
        type: log
        message: x
  - id: after
    type: log
    message: x
"""


def test_a_containers_errors_run_after_a_failure_then_finally_and_it_still_fails() -> None:
    driver = Driver.of(LOCAL_HANDLERS)
    driver.start()
    driver.fail("work")
    assert driver.drive_to_end() is S.FAILED
    assert states(driver) == [
        ("seq", "FAILED"),
        ("work", "FAILED"),
        ("on_error", "SUCCESS"),
        ("cleanup", "SUCCESS"),
    ]
    assert driver.run_of("seq")["error"] == "task 'work' failed"


def test_a_containers_finally_runs_after_success_and_errors_do_not() -> None:
    driver = Driver.of(LOCAL_HANDLERS)
    driver.start()
    driver.complete("work")
    assert driver.drive_to_end() is S.COMPLETED
    assert [task for task, _ in states(driver)] == ["seq", "work", "skipped", "cleanup", "after"]


def test_allow_failure_with_local_handlers_ends_in_warning_and_the_flow_goes_on() -> None:
    driver = Driver.of(
        LOCAL_HANDLERS.replace(
            "io.kestra.plugin.core.flow.Sequential", "io.kestra.plugin.core.flow.AllowFailure"
        )
    )
    driver.start()
    driver.fail("work")
    assert driver.drive_to_end() is S.WARNING
    assert states(driver)[0] == ("seq", "WARNING")
    assert states(driver)[-1] == ("after", "SUCCESS")


def test_a_fail_task_is_retried_like_any_task_then_allowed_to_fail() -> None:
    """Kestra's task-allow-failure-runnable.yml: Fail with retry and allowFailure."""
    driver = Driver.of(
        """
id: retried
tasks:
  - id: fail
    type: io.kestra.plugin.core.execution.Fail
    allowFailure: true
    retry: {type: constant, interval: PT0.100S, maxAttempt: 3}
  - id: log
    type: log
    message: x
"""
    )
    driver.start()
    assert driver.drive_to_end() is S.WARNING
    assert driver.run_of("fail")["attempt"] == 3
    assert states(driver) == [("fail", "WARNING"), ("log", "SUCCESS")]


def test_set_and_unset_variables_change_what_later_tasks_read() -> None:
    """Kestra's task-when-executionupdating.yml, with ``when`` (runIf's newer name)."""
    driver = Driver.of(
        """
id: vars
variables:
  list: []
  keep: 1
tasks:
  - id: unset
    type: io.kestra.plugin.core.execution.UnsetVariables
    when: "true"
    variables: [list]
  - id: set
    type: io.kestra.plugin.core.execution.SetVariables
    variables:
      list: [42]
      keep: "{{ vars.keep + 1 }}"
  - id: skipped
    type: io.kestra.plugin.core.execution.SetVariables
    when: "false"
    variables:
      list: [1]
  - id: read
    type: log
    message: "{{ vars.list }} {{ vars.keep }}"
"""
    )
    driver.start()
    assert driver.drive_to_end() is S.COMPLETED
    assert driver.state["variables"] == {"list": [42], "keep": 2}
    assert driver.run_of("skipped")["state"] == "SKIPPED"
    assert driver.outstanding == {}


# -- afterExecution --------------------------------------------------------------------

AFTER = """
id: after
tasks:
  - id: work
    type: python
    function: m:f
afterExecution:
  - id: report
    type: python
    function: m:report
    kwargs: {state: "{{ execution.state }}"}
"""


def test_after_execution_runs_once_the_outcome_is_decided_and_never_changes_it() -> None:
    driver = Driver.of(AFTER)
    driver.start()
    driver.complete("work")
    assert driver.started_task_ids()[-1] == "report"
    (decided,) = driver.events_of("workflow.decided")
    assert decided.data["state"] == "COMPLETED"
    report = driver.outstanding_of("report")[0]
    assert report.spec["kwargs"] == {"state": "SUCCESS"}  # Kestra's name of the outcome
    driver.fail("report")
    assert driver.status() is S.COMPLETED  # a failing afterExecution task changes nothing
    assert driver.state["ended_at"] == decided.at


def test_after_execution_runs_after_a_cancel_and_the_execution_stays_cancelled() -> None:
    driver = Driver.of(AFTER)
    driver.start()
    driver.cancel("enough")
    driver.ack_all_cancels()
    report = driver.outstanding_of("report")[0]
    assert report.spec["kwargs"] == {"state": "CANCELLED"}
    driver.complete("report")
    assert driver.status() is S.CANCELLED


def test_a_cancel_during_after_execution_stops_its_tasks_and_keeps_the_outcome() -> None:
    driver = Driver.of(AFTER)
    driver.start()
    driver.fail("work")
    driver.cancel("stop the report")
    driver.ack_all_cancels()
    assert driver.status() is S.FAILED
    assert driver.run_of("report")["state"] == "CANCELLED"


def test_terminate_runs_no_after_execution_task() -> None:
    driver = Driver.of(AFTER)
    driver.start()
    driver.terminate()
    assert driver.status() is S.TERMINATED
    assert "report" not in driver.started_task_ids()
