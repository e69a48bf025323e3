"""The ``python`` task: calls ``module:function`` with ``kwargs``.

Sync functions run in one bounded thread pool per process (``max_task_threads``
threads, created on first use) so that they never block the event loop; async
functions are awaited on the loop.

Cancellation: an async function receives ``asyncio.CancelledError`` at its
current ``await``. A sync function cannot be interrupted — Python has no way to
stop a thread — so cancelling abandons the await and the function keeps running
in its thread until it returns; its result is discarded. A function that was
still queued for a thread never starts. Sync task code that must stop early
should do its work in small steps or be written as ``async def``.

Which functions may be called is the operator's decision, not the flow's: only
those of the modules the ``python_modules`` setting names or ``python_paths``
holds, checked before anything is imported and again on
the object the import found (see :mod:`pausepoint.tasks.policy`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import importlib
import inspect
import json
import os
import sys
import sysconfig
import threading
import traceback
import weakref
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pausepoint.config import Settings
from pausepoint.errors import TaskError
from pausepoint.tasks.context import LeafContext
from pausepoint.tasks.policy import function_refusal, resolved_refusal

CONTEXT_PARAMETER = "pausepoint"
"""A function that declares a parameter with this name receives the LeafContext."""

_MAX_MESSAGE_CHARS = 500

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_paths_added: set[str] = set()
_TASKS_DIR = str(Path(__file__).resolve().parent) + os.sep


def _directories(*keys: str) -> tuple[str, ...]:
    return tuple(
        {str(Path(p).resolve()) + os.sep for key in keys if (p := sysconfig.get_path(key))}
    )


_STDLIB_DIRS = _directories("stdlib", "platstdlib")
# Installed packages can sit below the stdlib directory (a Python without a venv).
_PACKAGE_DIRS = _directories("purelib", "platlib")


def _in_stdlib(filename: str) -> bool:
    return filename.startswith(_STDLIB_DIRS) and not filename.startswith(_PACKAGE_DIRS)


def _thread_pool(max_workers: int) -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=max_workers, thread_name_prefix="pausepoint-task"
            )
        return _pool


def shutdown_thread_pool() -> None:
    """Stop the pool: queued calls are cancelled, running ones finish in the background."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)


def _add_python_paths(paths: tuple[str, ...]) -> None:
    """Put ``paths`` at the front of ``sys.path``, in order, each at most once per process."""
    with _lock:
        missing = [path for path in paths if path not in _paths_added]
        if not missing:
            return
        for path in reversed(missing):
            if path not in sys.path:
                sys.path.insert(0, path)
            _paths_added.add(path)
        importlib.invalidate_caches()


def _describe(exc: BaseException) -> str:
    message = _one_line(str(exc))
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > _MAX_MESSAGE_CHARS:
        text = text[: _MAX_MESSAGE_CHARS - 3] + "..."
    return text


def _searched(paths: tuple[str, ...]) -> str:
    return f"python_paths searched: {list(paths)}" if paths else "no python_paths configured"


def check_function(reference: str, settings: Settings) -> None:
    """Raise TaskError unless ``reference`` names a function of a module the operator
    allows (see :mod:`pausepoint.tasks.policy`); nothing is imported."""
    refusal = function_refusal(reference, settings)
    if refusal is not None:
        raise TaskError(f"python task: {refusal}")


def import_function(reference: str, settings: Settings) -> Callable[..., Any]:
    """The function ``module:attribute.path`` names, imported through ``python_paths``.

    Raises TaskError when the operator does not allow it (checked before importing,
    and again on what the import found), or it cannot be imported or called.
    """
    check_function(reference, settings)
    module_name, _, attribute_path = reference.partition(":")
    paths = settings.python_paths
    _add_python_paths(paths)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        if module_name == missing or module_name.startswith(missing + "."):
            raise TaskError(
                f"python task {reference}: module '{module_name}' not found ({_searched(paths)})"
            ) from None
        raise TaskError(
            f"python task {reference}: importing '{module_name}' failed: "
            f"{_one_line(str(exc))} ({_searched(paths)})"
        ) from None
    except Exception as exc:
        raise TaskError(
            f"python task {reference}: importing '{module_name}' raised "
            f"{_describe(exc)}{_location(exc)}"
        ) from exc
    target: Any = module
    steps: list[Any] = [module]
    for part in attribute_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise TaskError(
                f"python task {reference}: module '{module_name}' has no attribute "
                f"'{attribute_path}'"
            ) from None
        steps.append(target)
    if not callable(target):
        raise TaskError(
            f"python task {reference}: '{attribute_path}' is a {type(target).__name__}, "
            "not a function"
        )
    refusal = resolved_refusal(reference, steps, settings)
    if refusal is not None:
        raise TaskError(f"python task: {refusal}")
    return target  # type: ignore[no-any-return]


def _is_async(function: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(function):
        return True
    call = getattr(function, "__call__", None)  # noqa: B004 - async callable objects
    return call is not None and inspect.iscoroutinefunction(call)


def _location(exc: BaseException) -> str:
    """`` (file:line)`` of the innermost frame in user code, best effort."""
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not frame.filename.startswith(_TASKS_DIR)
    ]
    if not frames:
        return ""
    user_frames = [frame for frame in frames if not _in_stdlib(frame.filename)]
    frame = (user_frames or frames)[-1]
    return f" (at {frame.filename}:{frame.lineno})"


def _call_arguments(
    reference: str, function: Callable[..., Any], kwargs: dict[str, Any], ctx: LeafContext
) -> dict[str, Any]:
    plan = _call_plan(function)
    if plan is None:
        return kwargs  # builtins without a signature: let the call decide
    if plan.wants_context:
        if CONTEXT_PARAMETER in kwargs:
            raise TaskError(
                f"python task {reference}: kwargs must not contain '{CONTEXT_PARAMETER}'; "
                "it is reserved for the task context"
            )
        kwargs = {**kwargs, CONTEXT_PARAMETER: ctx}
    mismatch = plan.mismatch(frozenset(kwargs))
    if mismatch is not None:
        parameters = ", ".join(plan.signature.parameters)
        raise TaskError(
            f"python task {reference}: kwargs do not match its parameters ({parameters}): "
            f"{mismatch}"
        )
    return kwargs


class _CallPlan:
    """What calling one function needs to know of its signature, worked out once.

    Whether a call binds depends only on the names of its keyword arguments, so each
    set of names is checked once (a step runs the same task with the same names)."""

    def __init__(self, signature: inspect.Signature) -> None:
        self.signature = signature
        parameter = signature.parameters.get(CONTEXT_PARAMETER)
        self.wants_context = parameter is not None and parameter.kind in (
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.KEYWORD_ONLY,
        )
        self.mismatch = functools.lru_cache(maxsize=64)(self._mismatch)

    def _mismatch(self, names: frozenset[str]) -> str | None:
        """Why keyword arguments of these names cannot call the function; None if they can."""
        try:
            self.signature.bind(**dict.fromkeys(names))
        except TypeError as exc:
            return str(exc)
        return None


_CALL_PLANS: weakref.WeakKeyDictionary[Callable[..., Any], _CallPlan | None] = (
    weakref.WeakKeyDictionary()
)


def _call_plan(function: Callable[..., Any]) -> _CallPlan | None:
    """The function's call plan (cached while the function lives); None without a signature."""
    try:
        return _CALL_PLANS[function]
    except (KeyError, TypeError):  # not seen yet, or not weakly referenceable / hashable
        pass
    try:
        plan: _CallPlan | None = _CallPlan(inspect.signature(function))
    except (TypeError, ValueError):
        plan = None
    with contextlib.suppress(TypeError):
        _CALL_PLANS[function] = plan
    return plan


def _as_outputs(reference: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    outputs = value if isinstance(value, dict) else {"value": value}
    try:
        # The round trip detaches outputs from objects the function may still mutate
        # and turns tuples into lists, exactly as they will read back from the store.
        normalised = json.loads(json.dumps(outputs, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TaskError(
            f"python task {reference} returned a value that is not JSON-serialisable: {exc}"
        ) from None
    return normalised  # type: ignore[no-any-return]


async def run_python(spec: Mapping[str, Any], ctx: LeafContext) -> dict[str, Any]:
    """Call the function; its return value becomes the outputs.

    A ``dict`` is the outputs, ``None`` gives ``{}``, any other value gives
    ``{"value": value}``. Raises TaskError on import, signature, exception or
    serialisation problems.
    """
    reference = spec.get("function")
    if not isinstance(reference, str):
        raise TaskError("python task: 'function' is required ('package.module:function')")
    kwargs = spec.get("kwargs") or {}
    if not isinstance(kwargs, Mapping):
        raise TaskError(f"python task {reference}: 'kwargs' must be a mapping")
    settings = ctx.settings
    check_function(reference, settings)  # before any import runs a module's code
    pool = _thread_pool(settings.max_task_threads)
    loop = asyncio.get_running_loop()
    if reference.partition(":")[0] in sys.modules:
        function = import_function(reference, settings)  # already imported: no I/O, no hop
    else:
        # A module's first import runs its top-level code, which may take seconds.
        function = await loop.run_in_executor(pool, import_function, reference, settings)
    arguments = _call_arguments(reference, function, {str(k): v for k, v in kwargs.items()}, ctx)
    try:
        if _is_async(function):
            result = await function(**arguments)
        else:
            call = functools.partial(contextvars.copy_context().run, function, **arguments)
            result = await loop.run_in_executor(pool, call)
            if inspect.isawaitable(result):
                result = await result
    except TaskError:
        raise
    except (Exception, SystemExit) as exc:
        raise TaskError(f"{reference} raised {_describe(exc)}{_location(exc)}") from exc
    return _as_outputs(reference, result)
