"""``Engine`` and ``AsyncClient`` both are a ``ControlSurface``: the CLI's commands rely on it.

mypy checks the assignments below (structural typing, every signature); the
tests check the same at run time, so that a method renamed or given a new
required argument on one side fails here, not in a CLI command.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from pausepoint.client import AsyncClient
from pausepoint.service.engine import Engine
from pausepoint.surface import ControlSurface


def engine_is_a_surface(engine: Engine) -> ControlSurface:
    return engine


def engine_acting_for_a_caller_is_a_surface(engine: Engine) -> ControlSurface:
    return engine.acting_as("cli")


def client_is_a_surface(client: AsyncClient) -> ControlSurface:
    return client


PROTOCOL_METHODS = sorted(
    name
    for name, member in vars(ControlSurface).items()
    if callable(member) and not name.startswith("_")
)


def test_the_protocol_names_the_whole_shared_surface() -> None:
    assert PROTOCOL_METHODS == [
        "apply_flow",
        "audit",
        "cancel",
        "events",
        "execution",
        "execution_page",
        "flows",
        "follow",
        "inject",
        "pause",
        "pause_trigger",
        "resume",
        "resume_trigger",
        "start_execution",
        "state",
        "terminate",
        "triggers",
        "wait",
    ]


def _is_async_iterator_function(function: Any) -> bool:
    if inspect.isasyncgenfunction(function):
        return True
    returned = inspect.signature(function).return_annotation
    return "AsyncIterator" in str(returned)


def _accepts(implementation: inspect.Signature, declared: inspect.Signature) -> list[str]:
    """What keeps ``implementation`` from being called as ``declared`` says it can be."""
    problems: list[str] = []
    declared_params = list(declared.parameters.values())[1:]  # without self
    params = list(implementation.parameters.values())[1:]
    by_name = {p.name: p for p in params}
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    for index, wanted in enumerate(declared_params):
        if wanted.kind in (wanted.POSITIONAL_ONLY, wanted.POSITIONAL_OR_KEYWORD):
            if index >= len(positional) or positional[index].name != wanted.name:
                problems.append(f"{wanted.name} is not positional argument {index + 1}")
                continue
            found = positional[index]
        else:
            found_or_none = by_name.get(wanted.name)
            if found_or_none is None or found_or_none.kind not in (
                found_or_none.KEYWORD_ONLY,
                found_or_none.POSITIONAL_OR_KEYWORD,
            ):
                problems.append(f"no keyword argument {wanted.name}")
                continue
            found = found_or_none
        if wanted.default is not wanted.empty and found.default is found.empty:
            problems.append(f"{wanted.name} is required")
    declared_names = {p.name for p in declared_params}
    for extra in params:
        required = extra.default is extra.empty and extra.kind not in (
            extra.VAR_POSITIONAL,
            extra.VAR_KEYWORD,
        )
        if required and extra.name not in declared_names:
            problems.append(f"{extra.name} is required but not part of the protocol")
    return problems


@pytest.mark.parametrize("implementation", [Engine, AsyncClient])
@pytest.mark.parametrize("name", PROTOCOL_METHODS)
def test_each_implementation_has_every_method_with_a_compatible_signature(
    implementation: type, name: str
) -> None:
    declared = getattr(ControlSurface, name)
    method = getattr(implementation, name, None)
    assert method is not None, f"{implementation.__name__} has no {name}"
    if inspect.iscoroutinefunction(declared):
        assert inspect.iscoroutinefunction(method), f"{implementation.__name__}.{name} not async"
    else:
        assert _is_async_iterator_function(method), f"{implementation.__name__}.{name}"
    problems = _accepts(inspect.signature(method), inspect.signature(declared))
    assert problems == [], f"{implementation.__name__}.{name}: {problems}"
