"""Functions that `python` tasks call in tests/integration/test_tasks.py."""

from __future__ import annotations

import asyncio
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

from pausepoint.errors import TaskError
from pausepoint.tasks import LeafContext

NOT_CALLABLE = 3


def add(a: int, b: int) -> dict[str, int]:
    return {"sum": a + b}


def scalar() -> int:
    return 42


def nothing() -> None:
    return None


def pair() -> tuple[int, str]:
    return (1, "two")


def thread_name() -> str:
    return threading.current_thread().name


async def greet(name: str) -> dict[str, str]:
    await asyncio.sleep(0)
    return {"greeting": f"hello {name}"}


def fail(reason: str) -> None:
    raise ValueError(reason)


async def fail_async() -> None:
    await asyncio.sleep(0)
    raise KeyError("missing")


def fail_with_task_error() -> None:
    raise TaskError("the invoice was already paid")


def exit_process() -> None:
    sys.exit(3)


def not_serialisable() -> dict[str, Any]:
    return {"when": object()}


def identify(label: str, pausepoint: LeafContext) -> dict[str, Any]:
    return {
        "label": label,
        "execution_id": pausepoint.execution_id,
        "task_run_id": pausepoint.task_run_id,
        "attempt": pausepoint.attempt,
    }


def takes_pausepoint_name_positionally(*, value: int) -> int:
    return value


class Namespace:
    @staticmethod
    def double(x: int) -> int:
        return 2 * x


@dataclass
class AsyncGate:
    started: asyncio.Event = field(default_factory=asyncio.Event)
    cleaned_up: bool = False


ASYNC_GATES: dict[str, AsyncGate] = {}


async def wait_until_cancelled(token: str) -> None:
    gate = ASYNC_GATES[token]
    gate.started.set()
    try:
        await asyncio.Event().wait()
    finally:
        gate.cleaned_up = True


@dataclass
class SyncGate:
    started: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)


SYNC_GATES: dict[str, SyncGate] = {}


def block_until_released(token: str) -> str:
    gate = SYNC_GATES[token]
    gate.started.set()
    gate.release.wait(timeout=30)
    gate.finished.set()
    return token


class _Adder:
    def __call__(self, a: int, b: int) -> int:
        return a + b


class _UnhashableAdder(_Adder):
    def __eq__(self, other: object) -> bool:
        return isinstance(other, _UnhashableAdder)

    __hash__ = None  # type: ignore[assignment]


hashable_adder = _Adder()
unhashable_adder = _UnhashableAdder()


def log_then_fail(pausepoint: LeafContext) -> None:
    pausepoint.log("WARN", f"attempt {pausepoint.attempt} is about to fail")
    raise TaskError(f"attempt {pausepoint.attempt} failed")
