"""The no-op step the pausepoint peer runs: a Python task, as every peer's step is a
Python function (the built-in ``return`` task of bench/run.py skips the import)."""

from __future__ import annotations


async def noop(step: int = 0) -> int:
    return step
