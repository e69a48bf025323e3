"""pausepoint.testing, the harness users test their flows with: the docstring's example works."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

import pausepoint.testing
from pausepoint.testing import (
    TestEngine,
    assert_eventually,
    fast_settings,
    run_flow,
    run_to_end,
    wait_for_state,
)

HELLO = """
id: hello
namespace: testing.tests
inputs:
  - id: name
    type: STRING
tasks:
  - id: greet
    type: return
    format: "hello {{ inputs.name }}"
"""

FAILS = """
id: fails
namespace: testing.tests
tasks:
  - id: boom
    type: return
    format: "{{ outputs.missing.value }}"
"""


def docstring_example() -> str:
    """The example in the module's docstring, as code (the test function and the flow)."""
    doc = pausepoint.testing.__doc__
    assert doc is not None
    example = doc.split("::\n", 1)[1].split("\nEverything here", 1)[0]
    lines = example.splitlines()
    return "\n".join(line.removeprefix("    ") for line in lines)


async def test_the_docstring_example_runs_as_written(tmp_path: Path) -> None:
    namespace: dict[str, object] = {}
    exec(compile(docstring_example(), "pausepoint.testing docstring", "exec"), namespace)
    example = namespace["test_an_approval_waits_for_a_human"]
    assert callable(example)
    await example(tmp_path)


async def test_run_to_end_returns_the_final_view_on_a_file_in_the_directory(
    tmp_path: Path,
) -> None:
    async with TestEngine(tmp_path) as engine:
        view = await run_to_end(engine, HELLO, inputs={"name": "Ada"})
        assert view.state == "COMPLETED"
        assert view.task_run("greet").outputs == {"value": "hello Ada"}
    assert (tmp_path / "pausepoint.db").is_file()


async def test_waiting_for_a_state_an_ended_execution_cannot_reach_fails_at_once(
    tmp_path: Path,
) -> None:
    async with TestEngine(tmp_path) as engine:
        execution = await run_flow(engine, FAILS)
        with pytest.raises(
            AssertionError, match=r"ended FAILED \(.*missing.*\) while waiting for \['PAUSED'\]"
        ):
            await wait_for_state(engine, execution.id, "PAUSED", timeout=30)


async def test_settings_override_the_fast_defaults_and_db_may_be_a_url(tmp_path: Path) -> None:
    harness = TestEngine(tmp_path, db=f"sqlite:///{tmp_path / 'other.db'}", poll_interval=0.2)
    assert harness.settings.db.endswith("other.db")
    assert harness.settings.poll_interval == 0.2
    assert fast_settings(tmp_path / "x.db").db == f"sqlite:///{tmp_path / 'x.db'}"


async def test_assert_eventually_returns_the_first_true_value_of_a_plain_or_async_check() -> None:
    values = iter([0, 0, 3])
    assert await assert_eventually(lambda: next(values)) == 3

    became_true = asyncio.Event()

    async def released() -> bool:
        return became_true.is_set()

    asyncio.get_running_loop().call_soon(became_true.set)
    assert await assert_eventually(released) is True


async def test_assert_eventually_retries_a_failing_assertion_and_reports_the_last() -> None:
    attempts: list[int] = []

    def check() -> bool:
        attempts.append(1)
        assert len(attempts) >= 3, f"only {len(attempts)} attempts"
        return True

    assert await assert_eventually(check) is True

    def never() -> bool:
        raise AssertionError("still red")

    with pytest.raises(
        AssertionError, match=re.escape("the light not reached within 0.05s; last: still red")
    ):
        await assert_eventually(never, timeout=0.05, what="the light")
    with pytest.raises(AssertionError, match=r"last value: \[\]"):
        await assert_eventually(list, timeout=0.05)


def test_the_public_surface_is_pinned() -> None:
    assert pausepoint.testing.__all__ == [
        "TestEngine",
        "assert_eventually",
        "fast_settings",
        "run_flow",
        "run_to_end",
        "wait_for_state",
    ]
