"""What the engine does with Pause tasks, retries, timeouts, blocks and crashes."""

from __future__ import annotations

import pytest

from pausepoint.engine.model import CancelTask, ExecutionStatus, RunTask, SetTimer, TaskSucceeded

from .engine_driver import Driver

S = ExecutionStatus


def pause_flow(behavior: str) -> str:
    return f"""
id: expiring
tasks:
  - id: approve
    type: pause
    pauseDuration: PT10M
    behavior: {behavior}
    onResume:
      - id: decision
        type: STRING
        defaults: approved
      - id: count
        type: INT
        defaults: 3
  - id: after
    type: log
    message: "{{{{ outputs.approve.onResume.decision }}}}"
"""


def expire(driver: Driver) -> None:
    driver.start()
    assert driver.status() is S.PAUSED
    timer_id = f"pause:{driver.task_pause_id('approve')}"
    assert driver.timers[timer_id] == driver.now + 600
    driver.fire_due_timers(advance_clock_to=driver.now + 600)


# -- Pause task behaviours on expiry -------------------------------------------------------


def test_pause_expiry_with_resume_behaviour_succeeds_with_the_default_inputs() -> None:
    driver = Driver.of(pause_flow("RESUME"))
    expire(driver)
    run = driver.run_of("approve")
    assert run["state"] == "SUCCESS"
    assert run["outputs"]["onResume"] == {"decision": "approved", "count": 3}
    assert run["outputs"]["resumed"]["by"] == "timer"
    (after,) = driver.last.run_tasks
    assert after.spec["message"] == "approved"
    driver.run_until_quiet()
    assert driver.status() is S.COMPLETED


def test_pause_expiry_with_warn_behaviour_ends_the_task_and_the_execution_in_warning() -> None:
    driver = Driver.of(pause_flow("WARN"))
    expire(driver)
    assert driver.run_of("approve")["state"] == "WARNING"
    driver.run_until_quiet()
    assert driver.run_of("after")["state"] == "SUCCESS"
    assert driver.status() is S.WARNING
    assert driver.events_of("workflow.completed")[0].data["state"] == "WARNING"


def test_pause_expiry_with_fail_behaviour_fails_and_successors_never_run() -> None:
    driver = Driver.of(pause_flow("FAIL"))
    expire(driver)
    run = driver.run_of("approve")
    assert run["state"] == "FAILED"
    assert "approve" in run["error"] and "10m" in run["error"].lower()
    assert driver.status() is S.FAILED
    assert "after" not in driver.started_task_ids()


def test_pause_expiry_with_cancel_behaviour_cancels_the_execution() -> None:
    driver = Driver.of(pause_flow("CANCEL"))
    expire(driver)
    assert driver.status() is S.CANCELLED
    assert driver.run_of("approve")["state"] == "CANCELLED"
    assert "after" not in driver.started_task_ids()
    assert driver.events_of("workflow.cancelled")[0].data["by"] == "timer"


def test_pause_expiry_cannot_resume_by_itself_without_a_default_for_a_required_input() -> None:
    driver = Driver.of("""
id: needs-input
tasks:
  - id: approve
    type: pause
    pauseDuration: PT1M
    onResume:
      - id: decision
        type: STRING
""")
    driver.start()
    driver.fire_due_timers(advance_clock_to=driver.now + 60)
    assert driver.status() is S.FAILED
    assert "cannot resume by itself" in driver.run_of("approve")["error"]


def test_pause_task_resumed_with_invalid_inputs_is_rejected_naming_the_field() -> None:
    driver = Driver.of(pause_flow("RESUME"))
    driver.start()
    result = driver.resume(count="many")
    assert not result.applied
    assert "count" in result.message
    assert driver.status() is S.PAUSED
    assert driver.resume(count="7").applied
    assert driver.run_of("approve")["outputs"]["onResume"] == {"decision": "approved", "count": 7}


# -- retries and timeouts ----------------------------------------------------------------------


def test_retry_with_exponential_backoff_arms_growing_timers_capped_by_max_interval() -> None:
    driver = Driver.of("""
id: retrying
tasks:
  - id: flaky
    type: log
    message: try
    retry:
      type: exponential
      maxAttempts: 5
      interval: PT2S
      delayFactor: 3
      maxInterval: PT30S
""")
    driver.start()
    delays = []
    for attempt in (1, 2, 3, 4):
        (action,) = driver.outstanding_of("flaky")
        assert action.attempt == attempt
        step = driver.fail("flaky", error=f"nope {attempt}")
        (timer,) = [a for a in step.transition.actions if isinstance(a, SetTimer)]
        assert timer.timer_id == f"retry:{action.task_run_id}"
        delays.append(timer.deadline - driver.now)
        assert driver.run_of("flaky")["state"] == "RETRYING"
        assert driver.status() is S.RUNNING
        (retry_step,) = driver.fire_due_timers(advance_clock_to=timer.deadline)
        assert [a.attempt for a in retry_step.run_tasks] == [attempt + 1]
    assert delays == [2.0, 6.0, 18.0, 30.0]
    assert [e.data["attempt"] for e in driver.events_of("task.retrying")] == [1, 2, 3, 4]
    driver.fail("flaky", error="final")
    assert driver.run_of("flaky")["state"] == "FAILED"
    assert driver.run_of("flaky")["error"] == "final"
    assert driver.status() is S.FAILED


def test_retry_success_on_a_later_attempt_completes() -> None:
    driver = Driver.of("""
id: retrying
tasks:
  - id: flaky
    type: log
    message: try
    retry:
      maxAttempts: 2
      interval: PT1S
""")
    driver.start()
    driver.fail("flaky")
    driver.fire_next_timer()
    driver.complete("flaky", {"ok": True})
    assert driver.status() is S.COMPLETED
    assert driver.run_of("flaky")["attempt"] == 2


def test_task_timeout_cancels_the_task_then_fails_it_as_timed_out() -> None:
    driver = Driver.of("""
id: slow
tasks:
  - id: slow
    type: log
    message: slow
    timeout: PT5S
  - id: after
    type: log
    message: after
""")
    driver.start()
    (run_id,) = [a.task_run_id for a in driver.outstanding_of("slow")]
    assert driver.timers[f"timeout:{run_id}"] == driver.now + 5
    step = driver.fire_next_timer()
    assert step is not None
    assert step.transition.actions == [CancelTask(run_id)]
    assert driver.status() is S.RUNNING
    driver.ack_cancel(run_id)
    run = driver.run_of("slow")
    assert run["state"] == "FAILED"
    assert "timed out" in run["error"] and "slow" in run["error"]
    assert driver.status() is S.FAILED
    assert "after" not in driver.started_task_ids()


def test_task_finishing_after_its_timeout_fired_still_fails_as_timed_out() -> None:
    driver = Driver.of("""
id: slow
tasks:
  - id: slow
    type: log
    message: slow
    timeout: PT5S
""")
    driver.start()
    driver.fire_next_timer()
    driver.complete("slow", {"late": True})
    assert "timed out" in driver.run_of("slow")["error"]
    assert driver.status() is S.FAILED


def test_allow_failure_turns_a_failed_task_into_a_warning() -> None:
    driver = Driver.of("""
id: lenient
tasks:
  - id: shaky
    type: log
    message: shaky
    allowFailure: true
  - id: after
    type: log
    message: after
""")
    driver.start()
    driver.fail("shaky", error="bad")
    assert driver.run_of("shaky")["state"] == "WARNING"
    assert driver.run_of("shaky")["error"] == "bad"
    driver.run_until_quiet()
    assert driver.run_of("after")["state"] == "SUCCESS"
    assert driver.status() is S.WARNING


def test_failure_runs_errors_then_finally_and_ends_failed() -> None:
    driver = Driver.of("""
id: errors
tasks:
  - id: bad
    type: log
    message: bad
  - id: never
    type: log
    message: never
errors:
  - id: on-error
    type: log
    message: handle
finally:
  - id: cleanup
    type: log
    message: cleanup
""")
    driver.start()
    step = driver.fail("bad")
    assert [a.task_id for a in step.run_tasks] == ["on-error"]
    step = driver.complete("on-error")
    assert [a.task_id for a in step.run_tasks] == ["cleanup"]
    driver.complete("cleanup")
    assert driver.status() is S.FAILED
    assert "never" not in driver.started_task_ids()


# -- blocks ---------------------------------------------------------------------------------


def test_parallel_branch_on_a_pause_task_lets_siblings_run_and_pauses_when_idle() -> None:
    driver = Driver.of("""
id: branches
tasks:
  - id: fan
    type: parallel
    tasks:
      - id: approve
        type: pause
      - id: work
        type: sequential
        tasks:
          - id: step1
            type: log
            message: one
          - id: step2
            type: log
            message: two
  - id: after
    type: log
    message: after
""")
    step = driver.start()
    assert [a.task_id for a in step.run_tasks] == ["step1"]
    assert driver.run_of("approve")["state"] == "PAUSED"
    assert driver.status() is S.RUNNING  # step1 still in flight
    step = driver.complete("step1")
    assert [a.task_id for a in step.run_tasks] == ["step2"]
    assert driver.status() is S.RUNNING
    driver.complete("step2")
    assert driver.status() is S.PAUSED
    assert driver.state["checkpoint"] == "pause_task"
    assert driver.state["inflight"] == []
    driver.resume()
    assert [a.task_id for a in driver.last.run_tasks] == ["after"]
    driver.run_until_quiet()
    assert driver.status() is S.COMPLETED


def test_parallel_concurrency_limits_branches_in_flight() -> None:
    driver = Driver.of("""
id: limited
tasks:
  - id: fan
    type: parallel
    concurrency: 2
    tasks:
      - {id: a, type: log, message: a}
      - {id: b, type: log, message: b}
      - {id: c, type: log, message: c}
""")
    step = driver.start()
    assert [a.task_id for a in step.run_tasks] == ["a", "b"]
    step = driver.complete("b")
    assert [a.task_id for a in step.run_tasks] == ["c"]
    driver.run_until_quiet()
    assert driver.status() is S.COMPLETED


def test_foreach_runs_each_value_and_keys_outputs_by_value() -> None:
    driver = Driver.of("""
id: loop
tasks:
  - id: each
    type: foreach
    values: ["red", "green"]
    tasks:
      - id: paint
        type: return
        format: "{{ taskrun.value }}"
  - id: after
    type: log
    message: "{{ outputs.paint.green.value }}"
""")
    step = driver.start()
    assert [(a.task_id, a.spec["format"]) for a in step.run_tasks] == [("paint", "red")]
    (red,) = driver.outstanding_of("paint")
    step = driver.complete(red.task_run_id, {"value": "RED"})
    assert [(a.task_id, a.spec["format"]) for a in step.run_tasks] == [("paint", "green")]
    (green,) = driver.outstanding_of("paint")
    step = driver.complete(green.task_run_id, {"value": "GREEN"})
    assert driver.state["outputs"]["paint"] == {
        "red": {"value": "RED"},
        "green": {"value": "GREEN"},
    }
    (after,) = step.run_tasks
    assert after.spec["message"] == "GREEN"
    driver.run_until_quiet()
    assert driver.status() is S.COMPLETED


def test_foreach_values_from_a_json_template_run_in_parallel() -> None:
    driver = Driver.of(
        """
id: loop
inputs:
  - id: items
    type: JSON
tasks:
  - id: each
    type: foreach
    values: "{{ inputs.items }}"
    concurrency: 0
    tasks:
      - id: item
        type: log
        message: "{{ taskrun.value }}"
""",
        inputs={"items": [1, 2, 3]},
    )
    step = driver.start()
    assert sorted(str(a.spec["message"]) for a in step.run_tasks) == ["1", "2", "3"]
    driver.run_until_quiet()
    assert driver.status() is S.COMPLETED


@pytest.mark.parametrize(("flag", "branch"), [(True, "yes"), (False, "no")])
def test_if_runs_the_branch_the_condition_picks(flag: bool, branch: str) -> None:
    driver = Driver.of(
        """
id: choose
inputs:
  - id: flag
    type: BOOLEAN
tasks:
  - id: check
    type: if
    condition: "{{ inputs.flag }}"
    then:
      - {id: "yes", type: log, message: "yes"}
    else:
      - {id: "no", type: log, message: "no"}
""",
        inputs={"flag": flag},
    )
    step = driver.start()
    assert [a.task_id for a in step.run_tasks] == [branch]
    driver.run_until_quiet()
    assert driver.status() is S.COMPLETED
    assert driver.run_of("check")["branch"] == ("then" if flag else "else")


@pytest.mark.parametrize(("value", "branch"), [("a", "on-a"), ("b", "on-b"), ("z", "fallback")])
def test_switch_runs_the_matching_case_or_the_defaults(value: str, branch: str) -> None:
    driver = Driver.of(
        """
id: switching
inputs:
  - id: key
    type: STRING
tasks:
  - id: route
    type: switch
    value: "{{ inputs.key }}"
    cases:
      a:
        - {id: on-a, type: log, message: a}
      b:
        - {id: on-b, type: log, message: b}
    defaults:
      - {id: fallback, type: log, message: z}
""",
        inputs={"key": value},
    )
    step = driver.start()
    assert [a.task_id for a in step.run_tasks] == [branch]
    driver.run_until_quiet()
    assert driver.status() is S.COMPLETED


def test_disabled_task_is_skipped() -> None:
    driver = Driver.of("""
id: skipping
tasks:
  - {id: off, type: log, message: off, disabled: true}
  - {id: on, type: log, message: on}
""")
    step = driver.start()
    assert [a.task_id for a in step.run_tasks] == ["on"]
    assert driver.run_of("off")["state"] == "SKIPPED"
    assert driver.events_of("task.skipped")[0].data["task_id"] == "off"
    driver.run_until_quiet()
    assert driver.status() is S.COMPLETED


def test_template_error_fails_the_task_with_a_message_naming_it() -> None:
    driver = Driver.of("""
id: broken
tasks:
  - id: render-me
    type: log
    message: "{{ outputs.missing.value }}"
  - id: after
    type: log
    message: after
""")
    step = driver.start()
    assert step.run_tasks == []
    run = driver.run_of("render-me")
    assert run["state"] == "FAILED"
    assert "render-me" in run["error"]
    assert driver.status() is S.FAILED
    assert "after" not in driver.started_task_ids()
    assert driver.events_of("task.failed")[0].data["task_id"] == "render-me"


def test_flow_outputs_render_into_the_result() -> None:
    driver = Driver.of("""
id: result
tasks:
  - {id: compute, type: return, format: x}
outputs:
  answer: "{{ outputs.compute.value }}"
""")
    driver.start()
    driver.complete("compute", {"value": 42})
    assert driver.status() is S.COMPLETED
    assert driver.state["result"] == {"answer": 42}


def test_execution_timeout_cancels_in_flight_work_and_ends_timed_out() -> None:
    driver = Driver.of("""
id: bounded
timeout: PT1M
tasks:
  - {id: slow, type: log, message: slow}
""")
    driver.start()
    step = driver.fire_next_timer()
    assert step is not None
    assert [a for a in step.transition.actions if isinstance(a, CancelTask)]
    assert driver.status() is S.CANCELLING
    driver.ack_all_cancels()
    assert driver.status() is S.TIMED_OUT


# -- crash recovery -------------------------------------------------------------------------


def test_recovered_reissues_in_flight_runs_with_the_same_attempt_and_rearms_timers() -> None:
    driver = Driver.of("""
id: crashy
tasks:
  - id: fan
    type: parallel
    tasks:
      - id: flaky
        type: log
        message: "attempt {{ taskrun.attemptsCount }}"
        retry: {maxAttempts: 3, interval: PT1S}
      - id: slow
        type: log
        message: slow
        timeout: PT1H
      - id: approve
        type: pause
        pauseDuration: P1D
""")
    driver.start()
    driver.fail("flaky")
    driver.fire_next_timer()
    (flaky,) = driver.outstanding_of("flaky")
    (slow,) = driver.outstanding_of("slow")
    assert flaky.attempt == 2
    timers = dict(driver.timers)
    assert set(timers) == {
        f"timeout:{slow.task_run_id}",
        f"pause:{driver.task_pause_id('approve')}",
    }
    started = len(driver.events_of("task.started"))
    step = driver.recover()
    reissued = {a.task_run_id: a for a in step.run_tasks}
    assert reissued == {flaky.task_run_id: flaky, slow.task_run_id: slow}
    assert driver.timers == timers
    assert len(driver.events_of("task.started")) == started  # re-runs are not new starts
    driver.complete("flaky")
    driver.complete("slow")
    assert driver.status() is S.PAUSED
    driver.fire_next_timer()
    assert driver.status() is S.COMPLETED


def test_recovered_while_cancelling_does_not_leave_reissued_work_uncancelled() -> None:
    """After a crash during CANCELLING, work re-issued by the engine must be cancelled too."""
    driver = Driver.of("""
id: crash-cancel
tasks:
  - {id: slow, type: log, message: slow}
""")
    driver.start()
    driver.cancel()
    step = driver.recover()
    reissued = {a.task_run_id for a in step.run_tasks}
    cancelled = {a.task_run_id for a in step.transition.actions if isinstance(a, CancelTask)}
    assert reissued <= cancelled, (
        f"re-issued {reissued} while CANCELLING without cancelling them: {step.transition}"
    )


def test_recovered_after_a_task_timeout_fired_still_cancels_the_rerun() -> None:
    driver = Driver.of("""
id: crash-timeout
tasks:
  - {id: slow, type: log, message: slow, timeout: PT5S}
""")
    driver.start()
    driver.fire_next_timer()  # timeout: CancelTask sent, the task is timing out
    step = driver.recover()
    reissued = {a.task_run_id for a in step.run_tasks}
    cancelled = {a.task_run_id for a in step.transition.actions if isinstance(a, CancelTask)}
    assert reissued <= cancelled or any(
        isinstance(a, SetTimer) and a.timer_id.startswith("timeout:")
        for a in step.transition.actions
    ), f"the re-run of a timed-out task is never stopped: {step.transition.actions}"


def test_recovered_while_finally_runs_after_a_cancel_reruns_the_finally_task() -> None:
    """`finally` work started by a cancel was not being cancelled: a crash must not skip it."""
    driver = Driver.of("""
id: crash-in-finally
tasks:
  - {id: work, type: log, message: work}
finally:
  - {id: cleanup, type: log, message: cleanup}
""")
    driver.start()
    driver.cancel()
    driver.ack_cancel("work")
    (cleanup,) = driver.outstanding_of("cleanup")
    step = driver.recover()
    assert step.run_tasks == [cleanup]
    assert driver.status() is S.CANCELLING
    driver.complete("cleanup")
    assert driver.run_of("cleanup")["state"] == "SUCCESS"
    assert driver.status() is S.CANCELLED


def test_recovered_while_pausing_reruns_in_flight_work_instead_of_cancelling_it() -> None:
    """PAUSING lets in-flight work finish: after a crash it is re-run, not dropped."""
    driver = Driver.of("""
id: crash-pausing
tasks:
  - {id: first, type: log, message: one}
  - {id: second, type: log, message: two}
""")
    driver.start()
    (first,) = driver.outstanding_of("first")
    driver.pause()
    step = driver.recover()
    assert step.run_tasks == [first]
    assert driver.status() is S.PAUSING
    assert driver.run_of("first")["state"] == "RUNNING"
    driver.complete("first")
    assert driver.status() is S.PAUSED
    driver.resume()
    driver.run_until_quiet()
    assert driver.status() is S.COMPLETED
    assert driver.run_of("first")["state"] == "SUCCESS"


def test_stale_results_of_an_old_attempt_are_ignored() -> None:
    driver = Driver.of("""
id: stale
tasks:
  - id: flaky
    type: log
    message: x
    retry: {maxAttempts: 2, interval: PT1S}
""")
    driver.start()
    (first,) = driver.outstanding_of("flaky")
    driver.fail("flaky")
    driver.fire_next_timer()
    step = driver.feed(TaskSucceeded(first.task_run_id, 1, driver.tick(), {"old": True}))
    assert step.transition.events == [] and step.transition.actions == []
    assert driver.status() is S.RUNNING
    assert isinstance(driver.outstanding[first.task_run_id].action, RunTask)
    driver.complete("flaky", {"new": True})
    assert driver.state["outputs"]["flaky"] == {"new": True}


# -- Pause tasks in finally while cancelling ----------------------------------------------------


def test_a_pause_task_in_finally_opened_while_cancelling_can_be_resumed() -> None:
    """A cancel runs `finally`; a Pause task there must not leave the execution stuck."""
    driver = Driver.of("""
id: finally-pause
tasks:
  - {id: work, type: log, message: work}
finally:
  - {id: confirm, type: pause}
  - {id: cleanup, type: log, message: cleanup}
""")
    driver.start()
    driver.cancel()
    driver.ack_cancel("work")
    assert driver.status() is S.CANCELLING
    assert driver.run_of("confirm")["state"] == "PAUSED"
    result = driver.resume(driver.task_pause_id("confirm"))
    assert result.applied, result.message
    driver.run_until_quiet()
    assert driver.status() is S.CANCELLED
    assert driver.run_of("cleanup")["state"] == "SUCCESS"


def test_a_cancel_behaviour_pause_in_finally_expiring_while_cancelling_ends_the_execution() -> None:
    driver = Driver.of("""
id: finally-pause-expiry
tasks:
  - {id: work, type: log, message: work}
finally:
  - {id: confirm, type: pause, pauseDuration: PT1M, behavior: CANCEL}
""")
    driver.start()
    driver.cancel()
    driver.ack_cancel("work")
    assert driver.status() is S.CANCELLING
    driver.fire_due_timers(advance_clock_to=driver.now + 60)
    assert driver.status() is S.CANCELLED, (
        f"stuck in {driver.status()} with open pauses {driver.open_pauses} and no timer"
    )
