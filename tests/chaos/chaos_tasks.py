"""Task functions the chaos flows call (``chaos_tasks:step``, ``chaos_tasks:fail_if``).

Each call appends one JSON line to the run log named by ``CHAOS_RUN_LOG``
*before* it does its work, so the test can count how often every task run's
body was executed and by which worker process. Every call returns a fresh
random token: if a recorded result were ever replaced by a re-run, the token
stored with the task run would differ from the one its ``task.completed``
event announced first.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from typing import Any

from pausepoint.tasks import LeafContext

RUN_LOG_ENV = "CHAOS_RUN_LOG"


def _record(context: LeafContext, token: str, label: str) -> None:
    path = os.environ.get(RUN_LOG_ENV)
    if not path:
        return
    line = json.dumps(
        {
            "run": context.task_run_id,
            "attempt": context.attempt,
            "token": token,
            "label": label,
            "pid": os.getpid(),
            "at": time.time(),
        }
    )
    # One write() of a short line on an O_APPEND descriptor: lines from a process
    # killed mid-call are either whole or missing, never interleaved.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


async def step(label: str, ms: int, pausepoint: LeafContext, prev: Any = None) -> dict[str, Any]:
    """Sleep ``ms`` milliseconds; return a token unique to this call and what came before."""
    token = secrets.token_hex(8)
    _record(pausepoint, token, label)
    await asyncio.sleep(ms / 1000)  # the task's work: it must take time to be caught in flight
    return {"label": label, "token": token, "prev": prev, "attempt": pausepoint.attempt}


async def fail_if(label: str, fail: bool, ms: int, pausepoint: LeafContext) -> dict[str, Any]:
    """Like ``step``, but raises when ``fail`` is true (a deterministic task failure)."""
    token = secrets.token_hex(8)
    _record(pausepoint, token, label)
    await asyncio.sleep(ms / 1000)  # the task's work: it must take time to be caught in flight
    if fail:
        raise RuntimeError(f"{label}: failing on purpose")
    return {"label": label, "token": token, "attempt": pausepoint.attempt}
