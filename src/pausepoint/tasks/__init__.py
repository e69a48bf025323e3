"""Leaf task executors: the only code that does I/O on behalf of a task.

A runtime calls :func:`run_leaf` with a task's rendered spec; the pure engine
never calls into this package.
"""

from __future__ import annotations

from pausepoint.tasks.context import LeafContext, LogFn
from pausepoint.tasks.registry import (
    EXECUTORS,
    PURE_TYPES,
    Executor,
    run_leaf,
    shutdown_executors,
)

__all__ = [
    "EXECUTORS",
    "PURE_TYPES",
    "Executor",
    "LeafContext",
    "LogFn",
    "run_leaf",
    "shutdown_executors",
]
