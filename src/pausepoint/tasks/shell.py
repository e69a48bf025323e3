"""The ``shell`` task: runs ``commands`` one after another in local processes.

Each command runs as ``[*interpreter, command]`` in its own process group (a
new session), so that cancelling reaches every process the command started.
Output lines stream into the task run's log (stdout at INFO, stderr at WARN).
A stdout line ``::{"outputs": {...}}::`` (Kestra's convention) adds values to
the ``vars`` output.

When a command ends, processes it left behind in its process group are killed,
so nothing outlives its task run (a process that starts its own session with
``setsid`` opts out of this).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Callable, Mapping
from typing import Any

from pausepoint.errors import TaskError
from pausepoint.tasks import spec as read
from pausepoint.tasks.context import LeafContext

DEFAULT_INTERPRETER = ("/bin/sh", "-c")
STDOUT_TAIL_BYTES = 64 * 1024
"""How much of the end of stdout the ``stdout`` output keeps."""

# A line longer than this is logged in pieces, so one huge line cannot exhaust memory.
_MAX_LINE_BYTES = 64 * 1024
_READ_CHUNK_BYTES = 64 * 1024
# A process that escaped the group (setsid, a daemon) can hold our pipes open forever;
# past this many seconds after the command ended its output is no longer read.
_PIPE_DRAIN_SECONDS = 2.0
_DISABLED_MESSAGE = (
    "shell tasks are disabled; enable them with PAUSEPOINT_SHELL_ENABLED=true "
    "or Settings(shell_enabled=True)"
)


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _kestra_outputs(line: str) -> dict[str, Any] | None:
    """The ``outputs`` of a ``::{"outputs": {...}}::`` line, or None for any other line."""
    text = line.strip()
    if not (text.startswith("::{") and text.endswith("}::")):
        return None
    try:
        payload = json.loads(text[2:-2])
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    outputs = payload.get("outputs")
    return outputs if isinstance(outputs, dict) else {}


class _Capture:
    """What the task keeps of its commands' output."""

    def __init__(self, ctx: LeafContext) -> None:
        self._ctx = ctx
        self.stdout_tail = bytearray()
        self.vars: dict[str, Any] = {}
        self.last_stderr_line = ""

    def stdout_chunk(self, chunk: bytes) -> None:
        self.stdout_tail += chunk
        if len(self.stdout_tail) > STDOUT_TAIL_BYTES:
            del self.stdout_tail[: len(self.stdout_tail) - STDOUT_TAIL_BYTES]

    def stdout_line(self, raw: bytes) -> None:
        line = raw.decode("utf-8", errors="replace").rstrip("\r")
        outputs = _kestra_outputs(line)
        if outputs is None:
            self._ctx.log("INFO", line)
        else:
            self.vars.update(outputs)
            self._ctx.log("DEBUG", line)

    def stderr_line(self, raw: bytes) -> None:
        line = raw.decode("utf-8", errors="replace").rstrip("\r")
        if line.strip():
            self.last_stderr_line = line.strip()
        self._ctx.log("WARN", line)


async def _pump(
    stream: asyncio.StreamReader,
    on_line: Callable[[bytes], None],
    on_chunk: Callable[[bytes], None] | None = None,
) -> None:
    pending = bytearray()
    while chunk := await stream.read(_READ_CHUNK_BYTES):
        if on_chunk is not None:
            on_chunk(chunk)
        pending += chunk
        start = 0
        while (end := pending.find(b"\n", start)) >= 0:
            on_line(bytes(pending[start:end]))
            start = end + 1
        del pending[:start]
        while len(pending) > _MAX_LINE_BYTES:
            on_line(bytes(pending[:_MAX_LINE_BYTES]))
            del pending[:_MAX_LINE_BYTES]
    if pending:
        on_line(bytes(pending))


async def _drain(readers: asyncio.Future[Any], ctx: LeafContext) -> None:
    try:
        await asyncio.wait_for(asyncio.shield(readers), _PIPE_DRAIN_SECONDS)
    except TimeoutError:
        readers.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await readers
        ctx.log("WARN", "a detached process still holds the output open; it is no longer read")


async def _stop(
    process: asyncio.subprocess.Process, readers: asyncio.Future[Any], ctx: LeafContext
) -> None:
    """SIGTERM the group, SIGKILL it after the grace period, reap, drain the pipes."""
    grace = ctx.settings.cancel_grace_period
    _signal_group(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), grace)
    except TimeoutError:
        ctx.log("WARN", f"process group {process.pid} ignored SIGTERM for {grace}s; killing it")
    except asyncio.CancelledError:
        # Cancelled again while stopping (a terminate after a cancel): skip the grace.
        pass
    finally:
        _signal_group(process.pid, signal.SIGKILL)
    await process.wait()
    await _drain(readers, ctx)


async def _run_command(
    argv: list[str], cwd: str | None, env: dict[str, str], capture: _Capture, ctx: LeafContext
) -> int:
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
    except OSError as exc:
        if cwd is not None and exc.filename == cwd:
            raise TaskError(
                f"shell task: cannot use workingDirectory {cwd!r}: {exc.strerror or exc}"
            ) from exc
        raise TaskError(
            f"shell task: cannot start interpreter {argv[0]!r}: {exc.strerror or exc}"
        ) from exc
    assert process.stdout is not None and process.stderr is not None
    readers = asyncio.gather(
        _pump(process.stdout, capture.stdout_line, capture.stdout_chunk),
        _pump(process.stderr, capture.stderr_line),
    )
    try:
        returncode = await process.wait()
        # Background processes the command left in its group would hold the pipes open.
        _signal_group(process.pid, signal.SIGKILL)
        await _drain(readers, ctx)
    except asyncio.CancelledError:
        await _stop(process, readers, ctx)
        raise
    return returncode


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return f"was killed by signal {name}"
    return f"exited with code {returncode}"


async def run_shell(spec: Mapping[str, Any], ctx: LeafContext) -> dict[str, Any]:
    """Run every command in order; the first that fails fails the task.

    Outputs ``{"exitCode", "stdout" (its last 64 KiB), "vars"}``. On
    cancellation the running command's process group gets SIGTERM, then SIGKILL
    after ``settings.cancel_grace_period`` seconds; it is reaped before
    ``CancelledError`` propagates.
    """
    if not ctx.settings.shell_enabled:
        raise TaskError(_DISABLED_MESSAGE)
    commands = read.str_list(spec, "commands", "shell")
    if not commands:
        raise TaskError("shell task: 'commands' must hold at least one command")
    interpreter = read.str_list(spec, "interpreter", "shell", list(DEFAULT_INTERPRETER))
    if not interpreter:
        raise TaskError("shell task: 'interpreter' must not be empty")
    cwd = read.optional_str(spec, "workingDirectory", "shell")
    env = {
        **os.environ,
        "PAUSEPOINT_EXECUTION_ID": ctx.execution_id,
        "PAUSEPOINT_TASK_RUN_ID": ctx.task_run_id,
        "PAUSEPOINT_ATTEMPT": str(ctx.attempt),
        **read.str_map(spec, "env", "shell"),
    }
    capture = _Capture(ctx)
    returncode = 0
    for index, command in enumerate(commands, start=1):
        returncode = await _run_command([*interpreter, command], cwd, env, capture, ctx)
        if returncode != 0:
            message = f"shell command {index} of {len(commands)} {_describe_exit(returncode)}"
            if capture.last_stderr_line:
                message += f": {capture.last_stderr_line[:200]}"
            raise TaskError(message)
    return {
        "exitCode": returncode,
        "stdout": capture.stdout_tail.decode("utf-8", errors="replace"),
        "vars": capture.vars,
    }
