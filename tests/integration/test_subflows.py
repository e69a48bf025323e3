"""Subflows on the real embedded runtime (a real SQLite file): children that obey their parent.

A subflow task starts a whole execution, linked to its task run; the child's
end ends the task (``transmitFailed``); pause, resume, cancel and terminate
of a parent reach the children it waits for, and resume releases only what
the cascade paused.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from pausepoint.models import ExecutionView
from pausepoint.service.engine import Engine
from tests.integration.flows_functions import MODULE, gate, new_key

TIMEOUT = 20.0

CHILD = """
id: child
namespace: trees
inputs:
  - id: name
    type: STRING
    defaults: world
tasks:
  - id: hello
    type: return
    format: "hello {{ inputs.name }}"
  - id: gate
    type: pause
    runIf: "{{ inputs.name == 'gated' }}"
  - id: fail
    type: fail
    runIf: "{{ inputs.name == 'broken' }}"
    errorMessage: the child broke
outputs:
  greeting: "{{ outputs.hello.value }}"
"""

PARENT = """
id: parent
namespace: trees
inputs:
  - id: name
    type: STRING
    defaults: world
  - id: transmit
    type: BOOLEAN
    defaults: true
tasks:
  - id: call
    type: subflow
    namespace: trees
    flowId: child
    inputs:
      name: "{{ inputs.name }}"
    labels:
      team: blue
  - id: after
    type: return
    format: "{{ outputs.call.outputs.greeting }} / {{ outputs.call.state }}"
"""

SLOW_CHILD = """
id: slow
namespace: trees
tasks:
  - id: first
    type: sleep
    duration: PT0.3S
  - id: second
    type: sleep
    duration: PT0.3S
  - id: third
    type: sleep
    duration: PT0.3S
  - id: done
    type: return
    format: done
"""

FAN_OUT = """
id: fan
namespace: trees
tasks:
  - id: each
    type: parallel
    tasks:
      - id: a
        type: subflow
        namespace: trees
        flowId: middle
      - id: b
        type: subflow
        namespace: trees
        flowId: middle
"""

MIDDLE = """
id: middle
namespace: trees
tasks:
  - id: one
    type: subflow
    namespace: trees
    flowId: slow
  - id: two
    type: subflow
    namespace: trees
    flowId: slow
"""


async def _with_flows(engine: Engine, *flows: str) -> Engine:
    for source in flows:
        await engine.put_flow(source)
    return engine


async def _tree(engine: Engine, root_id: str) -> list[ExecutionView]:
    return [
        await engine.execution(record.id)
        for record in await engine.list_executions(root_id=root_id, limit=200)
    ]


async def test_a_subflow_runs_the_child_and_the_parent_reads_its_outputs(engine: Engine) -> None:
    await _with_flows(engine, CHILD, PARENT)
    started = await engine.start_execution("trees", "parent", inputs={"name": "ada"})
    view = await engine.wait(started.id, timeout=TIMEOUT)
    assert view.state == "COMPLETED", view.error
    call = next(run for run in view.task_runs if run.task_id == "call")
    assert call.outputs is not None
    child_id = call.outputs["executionId"]
    assert call.outputs["state"] == "COMPLETED"
    assert call.outputs["outputs"] == {"greeting": "hello ada"}
    after = next(run for run in view.task_runs if run.task_id == "after")
    assert after.outputs is not None
    assert after.outputs["value"] == "hello ada / COMPLETED"

    child = await engine.execution(child_id)
    assert child.state == "COMPLETED"
    assert child.labels["team"] == "blue"
    children = await engine.list_executions(parent_id=started.id)
    assert [record.id for record in children] == [child_id]
    events = [event.type for event in await engine.events(started.id)]
    assert "subflow.started" in events and "subflow.ended" in events


@pytest.mark.parametrize(
    ("transmit", "task_state", "parent_state"),
    [
        (True, "FAILED", "FAILED"),
        (False, "SUCCESS", "COMPLETED"),
    ],
)
async def test_a_failed_child_fails_its_task_only_with_transmit_failed(
    engine: Engine, transmit: bool, task_state: str, parent_state: str
) -> None:
    parent = PARENT.replace(
        "    labels:\n      team: blue\n", f"    transmitFailed: {str(transmit).lower()}\n"
    ).replace("{{ outputs.call.outputs.greeting }} / ", "")
    await _with_flows(engine, CHILD, parent)
    started = await engine.start_execution("trees", "parent", inputs={"name": "broken"})
    view = await engine.wait(started.id, timeout=TIMEOUT)
    call = next(run for run in view.task_runs if run.task_id == "call")
    assert call.outputs is not None
    assert (call.state, view.state) == (task_state, parent_state), view.error
    assert call.outputs["state"] == "FAILED"
    if transmit:
        assert "ended FAILED" in (call.error or "")


async def test_killing_a_paused_child_never_lets_the_parent_go_on(engine: Engine) -> None:
    """Kestra #12557: a killed paused subflow let its parent continue as if it succeeded."""
    await _with_flows(engine, CHILD, PARENT)
    started = await engine.start_execution("trees", "parent", inputs={"name": "gated"})
    child_id = await _child_of(engine, started.id)
    await engine.wait(child_id, until=lambda v: v.state == "PAUSED", timeout=TIMEOUT)
    await engine.terminate(child_id, reason="stuck")
    view = await engine.wait(started.id, timeout=TIMEOUT)
    assert view.state == "FAILED"
    states = {run.task_id: run.state for run in view.task_runs}
    assert states == {"call": "FAILED"}  # `after` never ran
    call = view.task_runs[0]
    assert call.outputs is not None
    assert call.outputs["state"] == "TERMINATED"


async def test_a_child_waiting_on_a_pause_task_is_resumed_and_the_parent_completes(
    engine: Engine,
) -> None:
    await _with_flows(engine, CHILD, PARENT)
    started = await engine.start_execution("trees", "parent", inputs={"name": "gated"})
    child_id = await _child_of(engine, started.id)
    await engine.wait(child_id, until=lambda v: v.state == "PAUSED", timeout=TIMEOUT)
    parent = await engine.execution(started.id)
    assert parent.state == "RUNNING"  # waiting for a child is not paused
    # The parent's own resume does not answer its child's Pause task.
    with pytest.raises(Exception, match="not paused"):
        await engine.resume(started.id)
    await engine.resume(child_id)
    view = await engine.wait(started.id, timeout=TIMEOUT)
    assert view.state == "COMPLETED", view.error


async def _child_of(engine: Engine, parent_id: str, count: int = 1) -> str:
    view = await engine.wait(
        parent_id,
        until=lambda v: (
            sum(1 for run in v.task_runs if run.outputs and "executionId" in run.outputs) >= count
        ),
        timeout=TIMEOUT,
    )
    return str(
        next(
            run.outputs["executionId"]
            for run in view.task_runs
            if run.outputs and "executionId" in run.outputs
        )
    )


async def test_pause_cascades_down_a_three_level_tree_and_resume_releases_it(
    engine: Engine,
) -> None:
    await _with_flows(engine, SLOW_CHILD, MIDDLE, FAN_OUT)
    root = await engine.start_execution("trees", "fan")
    # Both middles and their first grandchildren are running.
    await engine.wait(
        root.id,
        until=lambda v: sum(1 for r in v.task_runs if r.task_id in ("a", "b")) == 2,
        timeout=TIMEOUT,
    )
    tree: list[ExecutionView] = []
    for _ in range(200):
        tree = await _tree(engine, root.id)
        if len(tree) >= 4:
            break
        await _sleep(0.05)
    assert len(tree) >= 4
    # Kestra #14300: a pause did not reach the subflows. Here it holds the whole tree.
    await engine.pause(root.id, reason="weekend")
    for view in await _tree(engine, root.id):
        if view.state not in ("COMPLETED",):
            await engine.wait(
                view.id, until=lambda v: v.state in ("PAUSED", "COMPLETED"), timeout=TIMEOUT
            )
    paused_root = await engine.wait(
        root.id, until=lambda v: v.state == "PAUSED" and not v.busy_descendants, timeout=TIMEOUT
    )
    assert paused_root.busy_descendants == []  # the whole tree has stopped
    held = [view for view in await _tree(engine, root.id) if view.state == "PAUSED"]
    assert held, "the cascade paused nothing"
    for view in held:
        # Each is held by its own parent's cascade, not by a person.
        assert view.parent_id is not None
        assert [p.by for p in view.pause_points if p.kind == "manual"] == [
            f"cascade:{view.parent_id}"
        ]
    # Nothing moves while the tree is paused.
    before = {view.id: len(view.task_runs) for view in await _tree(engine, root.id)}
    await _sleep(1.0)
    after = {view.id: len(view.task_runs) for view in await _tree(engine, root.id)}
    assert before == after
    await engine.resume(root.id)
    view = await engine.wait(root.id, timeout=TIMEOUT * 2)
    assert view.state == "COMPLETED", view.error
    tree = await _tree(engine, root.id)
    assert len(tree) == 6  # two middles, four grandchildren
    assert {child.state for child in tree} == {"COMPLETED"}


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


@pytest.mark.parametrize("verb", ["cancel", "terminate"])
async def test_cancel_and_terminate_reach_every_descendant(engine: Engine, verb: str) -> None:
    await _with_flows(engine, SLOW_CHILD, MIDDLE, FAN_OUT)
    root = await engine.start_execution("trees", "fan")
    tree: list[ExecutionView] = []
    for _ in range(200):
        tree = await _tree(engine, root.id)
        if len(tree) >= 4:
            break
        await _sleep(0.05)
    if verb == "cancel":
        await engine.cancel(root.id, reason="not needed")
    else:
        await engine.terminate(root.id, reason="not needed")
    ended = await engine.wait(root.id, timeout=TIMEOUT)
    assert ended.state == ("CANCELLED" if verb == "cancel" else "TERMINATED")
    for child in await _tree(engine, root.id):
        final = await engine.wait(child.id, timeout=TIMEOUT)
        assert final.state in ("CANCELLED", "TERMINATED"), (child.id, final.state)
    # Nothing below a stopped parent starts afterwards.
    count = len(await _tree(engine, root.id))
    await _sleep(1.0)
    assert len(await _tree(engine, root.id)) == count


HOLDER = """
id: holder
namespace: trees
tasks:
  - id: call
    type: subflow
    namespace: trees
    flowId: slow
  - id: after
    type: return
    format: after
"""


async def _running_child(engine: Engine, parent_id: str) -> str:
    child_id = await _child_of(engine, parent_id)
    await engine.wait(child_id, until=lambda v: v.state == "RUNNING", timeout=TIMEOUT)
    return child_id


async def test_a_pause_that_does_not_cascade_lets_the_children_finish(engine: Engine) -> None:
    await _with_flows(engine, SLOW_CHILD, HOLDER)
    root = await engine.start_execution("trees", "holder")
    child_id = await _running_child(engine, root.id)
    await engine.pause(root.id, cascade=False)
    child = await engine.wait(child_id, timeout=TIMEOUT)
    assert child.state == "COMPLETED"
    assert not any(p.by == f"cascade:{root.id}" for p in child.pause_points)
    held = await engine.wait(
        root.id,
        until=lambda v: v.state == "PAUSED" and v.task_run("call").state == "SUCCESS",
        timeout=TIMEOUT,
    )
    assert [r.task_id for r in held.task_runs] == ["call"]  # nothing after it started
    await engine.resume(root.id)
    assert (await engine.wait(root.id, timeout=TIMEOUT)).state == "COMPLETED"


async def test_a_cancel_that_does_not_cascade_leaves_the_children_running(engine: Engine) -> None:
    await _with_flows(engine, SLOW_CHILD, HOLDER)
    root = await engine.start_execution("trees", "holder")
    child_id = await _running_child(engine, root.id)
    await engine.cancel(root.id, reason="only the parent", cascade=False)
    assert (await engine.wait(root.id, timeout=TIMEOUT)).state == "CANCELLED"
    assert (await engine.wait(child_id, timeout=TIMEOUT)).state == "COMPLETED"


async def test_a_resume_that_does_not_cascade_keeps_the_children_held(engine: Engine) -> None:
    await _with_flows(engine, SLOW_CHILD, HOLDER)
    root = await engine.start_execution("trees", "holder")
    child_id = await _running_child(engine, root.id)
    await engine.pause(root.id)
    await engine.wait(child_id, until=lambda v: v.state == "PAUSED", timeout=TIMEOUT)
    await engine.resume(root.id, cascade=False)
    await asyncio.sleep(1.0)  # a cascade would have resumed it by now
    assert (await engine.execution(child_id)).state == "PAUSED"
    assert (await engine.execution(root.id)).state == "RUNNING"
    await engine.resume(child_id)  # its hold is resumable by hand
    assert (await engine.wait(root.id, timeout=TIMEOUT)).state == "COMPLETED"


async def test_resume_of_the_parent_never_releases_an_operators_own_hold(engine: Engine) -> None:
    await _with_flows(engine, SLOW_CHILD, HOLDER)
    root = await engine.start_execution("trees", "holder")
    child_id = await _running_child(engine, root.id)
    await engine.pause(child_id, reason="checking it", actor="alice")
    await engine.wait(child_id, until=lambda v: v.state == "PAUSED", timeout=TIMEOUT)
    await engine.pause(root.id)
    await engine.wait(root.id, until=lambda v: v.state == "PAUSED", timeout=TIMEOUT)
    await engine.resume(root.id)
    await asyncio.sleep(1.0)
    child = await engine.execution(child_id)
    assert child.state == "PAUSED"
    assert [p.by for p in child.pause_points if p.kind == "manual"] == ["alice"]
    await engine.resume(child_id)
    assert (await engine.wait(root.id, timeout=TIMEOUT)).state == "COMPLETED"


async def test_a_flows_cascade_policy_decides_when_the_request_does_not(engine: Engine) -> None:
    detached = HOLDER.replace("id: holder", "id: detached") + "cascade:\n  pause: false\n"
    await _with_flows(engine, SLOW_CHILD, detached)
    root = await engine.start_execution("trees", "detached")
    child_id = await _running_child(engine, root.id)
    await engine.pause(root.id)
    assert (await engine.wait(child_id, timeout=TIMEOUT)).state == "COMPLETED"
    await engine.resume(root.id)
    assert (await engine.wait(root.id, timeout=TIMEOUT)).state == "COMPLETED"
    # A request may still ask for the cascade the flow does not do by default.
    again = await engine.start_execution("trees", "detached")
    child_id = await _running_child(engine, again.id)
    await engine.pause(again.id, cascade=True)
    await engine.wait(child_id, until=lambda v: v.state == "PAUSED", timeout=TIMEOUT)
    await engine.resume(again.id)
    assert (await engine.wait(again.id, timeout=TIMEOUT)).state == "COMPLETED"


async def test_a_pause_right_after_the_start_holds_the_whole_tree(engine: Engine) -> None:
    """Paused at once: whether the child was created held (its parent's pause was open
    when its task started it) or paused by the cascade, the tree stops and resumes."""
    await _with_flows(engine, SLOW_CHILD, HOLDER)
    root = await engine.start_execution("trees", "holder")
    await engine.pause(root.id)
    await engine.wait(root.id, until=lambda v: v.state == "PAUSED", timeout=TIMEOUT)
    for child in await _tree(engine, root.id):
        await engine.wait(child.id, until=lambda v: v.state == "PAUSED", timeout=TIMEOUT)
    frozen = {view.id: len(view.task_runs) for view in await _tree(engine, root.id)}
    await asyncio.sleep(1.0)
    assert {view.id: len(view.task_runs) for view in await _tree(engine, root.id)} == frozen
    await engine.resume(root.id)
    assert (await engine.wait(root.id, timeout=TIMEOUT)).state == "COMPLETED"


LOOP_WITH_A_PAUSE = """
id: loop_pause
namespace: trees
tasks:
  - id: each
    type: foreach
    values: [1, 2, 3]
    concurrency: 0
    tasks:
      - id: maybe_wait
        type: pause
        runIf: "{{ taskrun.value == 2 }}"
      - id: work
        type: sleep
        duration: PT0.2S
  - id: after
    type: return
    format: done
"""


async def test_a_pause_inside_a_loop_holds_only_its_iteration(engine: Engine) -> None:
    """Kestra #19373: a Pause in a loop paused the parent forever. Here it holds its own
    iteration; the others finish, the execution is PAUSED only when nothing else runs,
    and one resume completes it."""
    await engine.put_flow(LOOP_WITH_A_PAUSE)
    started = await engine.start_execution("trees", "loop_pause")
    view = await engine.wait(started.id, until=lambda v: v.state == "PAUSED", timeout=TIMEOUT)
    runs = [(run.task_id, run.value, run.state) for run in view.task_runs]
    assert view.state == "PAUSED", runs
    assert ("maybe_wait", 2, "PAUSED") in runs, runs
    # The other iterations ran to the end while the second one waited.
    assert sorted(value for task_id, value, state in runs if task_id == "work") == [1, 3]
    (point,) = view.pause_points
    assert point.task_id == "maybe_wait"
    await engine.resume(started.id)
    done = await engine.wait(started.id, timeout=TIMEOUT)
    assert done.state == "COMPLETED", done.error
    assert sum(1 for run in done.task_runs if run.task_id == "work") == 3


async def test_a_pause_in_a_subflow_shows_in_the_roots_tree_and_is_resumable_there(
    engine: Engine,
) -> None:
    """The child's Pause task is an open pause point of the child, listed with the root's
    children; resuming it (from the child's page) lets the whole tree complete."""
    await _with_flows(engine, CHILD, PARENT)
    started = await engine.start_execution("trees", "parent", inputs={"name": "gated"})
    child_id = await _child_of(engine, started.id)
    child = await engine.wait(child_id, until=lambda v: v.state == "PAUSED", timeout=TIMEOUT)
    assert [p.task_id for p in child.pause_points] == ["gate"]
    root = await engine.execution(started.id)
    assert [(c.id, c.state) for c in root.children] == [(child_id, "PAUSED")]
    assert [
        (p.execution_id, p.pause_point.task_id, p.pause_point.kind)
        for p in root.descendant_pause_points
    ] == [(child_id, "gate", "task")]
    assert root.busy_descendants == []
    assert [c.id for c in await engine.list_executions(root_id=started.id)] == [child_id]
    await engine.resume(child_id)
    assert (await engine.wait(started.id, timeout=TIMEOUT)).state == "COMPLETED"


# -- ForEachItem -------------------------------------------------------------------------

GATED_ITEM = """
id: item
namespace: trees
inputs:
  - id: items
    type: STRING
tasks:
  - id: gate
    type: pause
  - id: echo
    type: return
    format: "{{ read(inputs.items) }}"
outputs:
  line: "{{ outputs.echo.value }}"
"""

ITEMS_PARENT = """
id: items
namespace: trees
inputs:
  - id: file
    type: FILE
tasks:
  - id: each
    type: foreach_item
    items: "{{ inputs.file }}"
    namespace: trees
    flowId: item
    concurrencyLimit: 2
    inputs:
      items: "{{ taskrun.items }}"
"""


async def _items_children(engine: Engine, parent_id: str, count: int) -> list[ExecutionView]:
    """The parent's children once ``count`` of them are PAUSED on their own gate."""
    for _ in range(400):
        children = [
            await engine.execution(record.id)
            for record in await engine.list_executions(parent_id=parent_id)
        ]
        if sum(1 for child in children if child.state == "PAUSED") >= count:
            return children
        await _sleep(0.05)
    raise AssertionError(f"fewer than {count} children of {parent_id} paused")


async def test_for_each_item_runs_at_most_its_concurrency_limit_of_subflows(
    engine: Engine,
) -> None:
    """Five one-line batches, two subflows at a time: while the first two wait on their
    Pause task no third starts; each answer lets the next one in; the merged outputs
    keep the batches' order."""
    await _with_flows(engine, GATED_ITEM, ITEMS_PARENT)
    file = await engine.put_namespace_file("trees", "five.txt", b"a\nb\nc\nd\ne\n")
    started = await engine.start_execution("trees", "items", inputs={"file": file})
    answered: set[str] = set()
    while len(answered) < 5:
        children = await _items_children(engine, started.id, 1)
        waiting = [c for c in children if c.state == "PAUSED" and c.id not in answered]
        assert len([c for c in children if c.id not in answered]) <= 2, children
        for child in waiting:
            await engine.resume(child.id)
            answered.add(child.id)
        await _sleep(0.05)
    view = await engine.wait(started.id, timeout=TIMEOUT)
    assert view.state == "COMPLETED", view.error
    (items_run,) = [r for r in view.task_runs if r.type == "items_batches"]
    items = items_run.outputs or {}
    assert items["iterations"] == {"CREATED": 0, "RUNNING": 0, "SUCCESS": 5}
    merged = (view.task_run("each_merge").outputs or {})["subflowOutputs"]
    lines = (await engine.read_file(merged)).decode().splitlines()
    assert [json.loads(line) for line in lines] == [{"line": f"{x}\n"} for x in "abcde"]


async def test_a_pause_of_the_parent_holds_its_batches_and_a_cancel_ends_them(
    engine: Engine,
) -> None:
    """ForEachItem's subflows are children like any other: the parent's pause reaches
    them, and its cancel ends every one of them."""
    slow_item = SLOW_CHILD.replace("id: slow", "id: slow-item").replace(
        "tasks:", "inputs:\n  - id: items\n    type: STRING\ntasks:", 1
    )
    await _with_flows(engine, slow_item, ITEMS_PARENT.replace("flowId: item", "flowId: slow-item"))
    file = await engine.put_namespace_file("trees", "three.txt", b"1\n2\n3\n")
    started = await engine.start_execution("trees", "items", inputs={"file": file})
    await _child_of(engine, started.id)
    await engine.pause(started.id)
    for _ in range(400):
        children = [
            await engine.execution(record.id)
            for record in await engine.list_executions(parent_id=started.id)
        ]
        if children and all(c.state in ("PAUSED", "COMPLETED") for c in children):
            break
        await _sleep(0.05)
    assert any(c.state == "PAUSED" for c in children), children
    assert len(children) <= 2  # the limit holds while the tree is held
    await engine.cancel(started.id)
    view = await engine.wait(started.id, timeout=TIMEOUT)
    assert view.state == "CANCELLED"
    for record in await engine.list_executions(parent_id=started.id):
        child = await engine.wait(record.id, timeout=TIMEOUT)
        assert child.state in ("CANCELLED", "COMPLETED")
    assert len(await engine.list_executions(parent_id=started.id)) <= 2  # nothing new began


# -- PAUSED means the whole tree has stopped ----------------------------------------------


def _gated_tree(name: str, key: str, *, then_return: bool = False) -> tuple[str, str]:
    """A root ``<name>-root`` whose subflow ``<name>-step`` runs a python step that waits
    on the gate ``key`` (then, with ``then_return``, a return task)."""
    after = "  - id: after\n    type: return\n    format: done\n" if then_return else ""
    child = f"""
id: {name}-step
namespace: trees
tasks:
  - id: step
    type: python
    function: {MODULE}:step
    kwargs:
      key: {key}
{after}"""
    root = f"""
id: {name}-root
namespace: trees
tasks:
  - id: call
    type: subflow
    namespace: trees
    flowId: {name}-step
"""
    return child, root


async def test_a_parent_is_paused_only_once_its_children_have_stopped(engine: Engine) -> None:
    """The child's task is in flight when the root is paused: the child is PAUSING until
    its task ends, and so is the root; both are PAUSED once the step is over. A pause that
    does not cascade lands at once and leaves the child running."""
    key = new_key("tree-pause")
    await _with_flows(engine, *_gated_tree("gated", key, then_return=True))
    started = await engine.start_execution("trees", "gated-root")
    await asyncio.wait_for(gate(key).started.wait(), TIMEOUT)
    child_id = await _child_of(engine, started.id)
    await engine.pause(started.id)
    child = await engine.wait(child_id, until=lambda v: v.state == "PAUSING", timeout=TIMEOUT)
    await _sleep(0.5)  # several subflow polls: nothing may tell the root its child stopped
    root = await engine.execution(started.id)
    assert root.state == "PAUSING"
    assert root.busy_descendants == [child_id]
    gate(key).release.set()
    child = await engine.wait(child_id, until=lambda v: v.state == "PAUSED", timeout=TIMEOUT)
    root = await engine.wait(started.id, until=lambda v: v.state == "PAUSED", timeout=TIMEOUT)
    assert root.busy_descendants == []
    assert [r.task_id for r in child.task_runs] == ["step"]  # "after" waits for the resume
    await engine.resume(started.id)
    assert (await engine.wait(started.id, timeout=TIMEOUT)).state == "COMPLETED"


async def test_a_pause_that_does_not_hold_the_subflows_lands_at_once(engine: Engine) -> None:
    key = new_key("tree-no-cascade")
    await _with_flows(engine, *_gated_tree("gated-2", key))
    started = await engine.start_execution("trees", "gated-2-root")
    await asyncio.wait_for(gate(key).started.wait(), TIMEOUT)
    child_id = await _child_of(engine, started.id)
    await engine.pause(started.id, cascade=False)
    root = await engine.wait(started.id, until=lambda v: v.state == "PAUSED", timeout=TIMEOUT)
    assert root.busy_descendants == [child_id]  # said, not hidden
    assert (await engine.execution(child_id)).state == "RUNNING"
    gate(key).release.set()
    assert (await engine.wait(child_id, timeout=TIMEOUT)).state == "COMPLETED"
    await engine.resume(started.id)
    assert (await engine.wait(started.id, timeout=TIMEOUT)).state == "COMPLETED"
