"""A harness for testing flows: a real engine on a throwaway SQLite file.

pausepoint's own test suite drives the engine with these helpers; they are
public so that you can test your flows the same way (as ``temporalio.testing``
does for Temporal workflows)::

    from pausepoint.testing import TestEngine, run_flow, wait_for_state

    APPROVAL = '''
    id: approval
    namespace: company.team
    tasks:
      - id: wait
        type: pause
        onResume:
          - id: approved
            type: BOOLEAN
      - id: done
        type: return
        format: "approved={{ outputs.wait.onResume.approved }}"
    '''

    async def test_an_approval_waits_for_a_human(tmp_path):
        async with TestEngine(tmp_path) as engine:
            execution = await run_flow(engine, APPROVAL)
            await wait_for_state(engine, execution.id, "PAUSED")
            await engine.resume(execution.id, inputs={"approved": True})
            done = await wait_for_state(engine, execution.id, "COMPLETED")
            assert done.task_run("done").outputs == {"value": "approved=True"}

Everything here goes through the public :class:`~pausepoint.Engine` API, so a
test written with it keeps working whatever the engine does inside. Waits
gate on the engine's events (:func:`wait_for_state`) or poll with a deadline
(:func:`assert_eventually`), never on a fixed sleep.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, overload

from pausepoint.config import Settings
from pausepoint.models import ExecutionView
from pausepoint.service.engine import Engine

__all__ = [
    "TestEngine",
    "assert_eventually",
    "fast_settings",
    "run_flow",
    "run_to_end",
    "wait_for_state",
]

T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0


def fast_settings(db: str | os.PathLike[str], **overrides: Any) -> Settings:
    """Settings for tests: every interval and grace period shrunk so tests run fast.

    ``db`` is a SQLite file (a path) or a database URL (a ``str`` with ``://``);
    ``overrides`` are any other :class:`~pausepoint.Settings` fields.
    """
    url = str(db) if isinstance(db, str) and "://" in db else f"sqlite:///{db}"
    values: dict[str, Any] = {
        "db": url,
        "poll_interval": 0.05,
        "lease_ttl": 2.0,
        "lease_renew_interval": 0.5,
        "cancel_grace_period": 0.5,
        "command_wait_timeout": 5.0,
    }
    values.update(overrides)
    return Settings(**values)


class TestEngine:
    """``async with TestEngine(tmp_path) as engine``: a started :class:`~pausepoint.Engine`.

    Its database is ``pausepoint.db`` in ``directory`` (a test's ``tmp_path``),
    unless ``db`` is given among the ``settings``; the other ``settings``
    override :func:`fast_settings`. ``serve`` and ``secrets`` are passed to the
    engine. The engine is stopped on leaving the block, also when the test fails.
    """

    __test__ = False  # a harness, not a test class: pytest must not collect it

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        serve: bool = False,
        secrets: dict[str, str] | None = None,
        **settings: Any,
    ) -> None:
        db = settings.pop("db", Path(directory) / "pausepoint.db")
        self.settings = fast_settings(db, **settings)
        self.engine = Engine(self.settings, serve=serve, secrets=secrets)

    async def __aenter__(self) -> Engine:
        return await self.engine.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.engine.__aexit__(exc_type, exc, tb)


async def run_flow(
    engine: Engine,
    source: str,
    *,
    inputs: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
) -> ExecutionView:
    """Store the flow in ``source`` (YAML) and start an execution of it; returns its view."""
    record = await engine.put_flow(source)
    return await engine.start_execution(
        record.namespace, record.flow_id, inputs=inputs, labels=labels
    )


async def wait_for_state(
    engine: Engine, execution_id: str, *states: str, timeout: float = DEFAULT_TIMEOUT
) -> ExecutionView:
    """Wait, on the engine's events, until the execution is in one of ``states``.

    Raises :class:`AssertionError` when the execution ends in a state that is
    not one of them (it can never get there) or after ``timeout`` seconds,
    naming the state it is in.
    """
    wanted = set(states)

    def settled(view: ExecutionView) -> bool:
        return view.state in wanted or view.is_terminal

    try:
        view = await engine.wait(execution_id, until=settled, timeout=timeout)
    except TimeoutError:
        now = (await engine.execution(execution_id)).state
        raise AssertionError(
            f"execution {execution_id} not in {sorted(wanted)} within {timeout}s: it is {now}"
        ) from None
    if view.state not in wanted:
        detail = f" ({view.error})" if view.error else ""
        raise AssertionError(
            f"execution {execution_id} ended {view.state}{detail} while waiting for "
            f"{sorted(wanted)}"
        )
    return view


async def run_to_end(
    engine: Engine,
    source: str,
    *,
    inputs: dict[str, Any] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> ExecutionView:
    """Run the flow in ``source`` to its end (whatever it is); returns the final view."""
    execution = await run_flow(engine, source, inputs=inputs)
    try:
        return await engine.wait(execution.id, timeout=timeout)
    except TimeoutError:
        now = (await engine.execution(execution.id)).state
        raise AssertionError(
            f"execution {execution.id} did not end within {timeout}s: it is {now}"
        ) from None


@overload
async def assert_eventually(
    check: Callable[[], Awaitable[T | None]],
    *,
    timeout: float = ...,
    interval: float = ...,
    what: str = ...,
) -> T: ...


@overload
async def assert_eventually(
    check: Callable[[], T | None],
    *,
    timeout: float = ...,
    interval: float = ...,
    what: str = ...,
) -> T: ...


async def assert_eventually(
    check: Callable[[], Any],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = 0.02,
    what: str = "condition",
) -> Any:
    """Call ``check`` until it holds; returns the value it held with (never ``None``).

    ``check`` is a plain or an async function. It holds when it returns a true
    value; a false value, or an :class:`AssertionError` raised inside it, means
    "not yet". After ``timeout`` seconds this raises :class:`AssertionError`
    naming ``what`` and the last value (or the last assertion's message).

    For what the engine records, prefer :func:`wait_for_state` or
    ``engine.wait``, which wake on events; this polls, for the things that
    announce nothing (a file, a process, a third-party service).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        failed: AssertionError | None = None
        try:
            value = check()
            if inspect.isawaitable(value):
                value = await value
        except AssertionError as error:
            failed, value = error, None
        if failed is None and value:
            return value
        if loop.time() > deadline:
            last = f"last: {failed}" if failed is not None else f"last value: {value!r}"
            raise AssertionError(f"{what} not reached within {timeout}s; {last}") from failed
        await asyncio.sleep(interval)
