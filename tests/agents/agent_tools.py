"""Python tools the agent tests hand to the model."""

from __future__ import annotations


def add(a: int, b: int = 0) -> int:
    """Add two whole numbers.

    Longer notes that the model does not need.
    """
    return a + b


def explode(reason: str) -> None:
    """Always fails, to show that tool errors go back to the model."""
    raise RuntimeError(f"tool failed: {reason}")
