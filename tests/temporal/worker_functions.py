"""Task bodies for the worker-process tests: they leave traces in files the test reads."""

from __future__ import annotations

import os
import time
from pathlib import Path


def mark_then_wait(trace: str, seconds: float) -> dict[str, int]:
    """Append this process's id to ``trace``; the first caller then waits ``seconds``."""
    path = Path(trace)
    first = not path.exists()
    with path.open("a", encoding="utf-8") as handle:
        handle.write(f"{os.getpid()}\n")
    if first:
        time.sleep(seconds)  # the task's work: in flight when its worker is killed
    return {"pid": os.getpid()}
