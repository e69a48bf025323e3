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
import shutil
import signal
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pausepoint.config import Settings
from pausepoint.errors import TaskError
from pausepoint.tasks import spec as read
from pausepoint.tasks.context import LeafContext
from pausepoint.tasks.policy import check_shell_allowed

DEFAULT_INTERPRETER = ("/bin/sh", "-c")
STDOUT_TAIL_BYTES = 64 * 1024
"""How much of the end of stdout the ``stdout`` output keeps."""

# A line longer than this is logged in pieces, so one huge line cannot exhaust memory.
_MAX_LINE_BYTES = 64 * 1024
# A process that escaped the group (setsid, a daemon) can hold our pipes open forever;
# past this many seconds after the command ended its output is no longer read.
_PIPE_DRAIN_SECONDS = 2.0


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


class _LineSplitter:
    """Turns a byte stream into lines; a line longer than the cap is cut into pieces."""

    def __init__(self, on_line: Callable[[bytes], None]) -> None:
        self._on_line = on_line
        self._pending = bytearray()

    def feed(self, data: bytes) -> None:
        pending = self._pending
        pending += data
        start = 0
        while (end := pending.find(b"\n", start)) >= 0:
            self._on_line(bytes(pending[start:end]))
            start = end + 1
        del pending[:start]
        while len(pending) > _MAX_LINE_BYTES:
            self._on_line(bytes(pending[:_MAX_LINE_BYTES]))
            del pending[:_MAX_LINE_BYTES]

    def flush(self) -> None:
        if self._pending:
            self._on_line(bytes(self._pending))
            self._pending.clear()


class _CommandProtocol(asyncio.SubprocessProtocol):
    """Streams one command's output into the capture and reports exit and end of output.

    Exit and end of output are separate futures because a background process
    can hold the pipes open after the command itself has exited.
    """

    def __init__(self, capture: _Capture) -> None:
        loop = asyncio.get_running_loop()
        self.exited: asyncio.Future[None] = loop.create_future()
        self.output_closed: asyncio.Future[None] = loop.create_future()
        self._capture = capture
        self._splitters = {
            1: _LineSplitter(capture.stdout_line),
            2: _LineSplitter(capture.stderr_line),
        }

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        chunk = data.encode() if isinstance(data, str) else data
        if fd == 1:
            self._capture.stdout_chunk(chunk)
        self._splitters[fd].feed(chunk)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        splitter = self._splitters.pop(fd, None)
        if splitter is not None:
            splitter.flush()
        if not self._splitters and not self.output_closed.done():
            self.output_closed.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        for splitter in self._splitters.values():
            splitter.flush()
        self._splitters.clear()
        for future in (self.exited, self.output_closed):
            if not future.done():
                future.set_result(None)


async def _settled(future: asyncio.Future[None], within: float | None = None) -> bool:
    """Wait for ``future`` without cancelling it when the wait is cancelled or times out."""
    done, _ = await asyncio.wait([future], timeout=within)
    return bool(done)


async def _drain(protocol: _CommandProtocol, ctx: LeafContext) -> None:
    if not await _settled(protocol.output_closed, _PIPE_DRAIN_SECONDS):
        ctx.log("WARN", "a detached process still holds the output open; it is no longer read")


async def _stop(pgid: int, protocol: _CommandProtocol, ctx: LeafContext) -> None:
    """SIGTERM the group, SIGKILL it after the grace period, wait until reaped, drain."""
    grace = ctx.settings.cancel_grace_period
    _signal_group(pgid, signal.SIGTERM)
    try:
        if not await _settled(protocol.exited, grace):
            ctx.log("WARN", f"process group {pgid} ignored SIGTERM for {grace}s; killing it")
    except asyncio.CancelledError:
        # Cancelled again while stopping (a terminate after a cancel): skip the grace.
        pass
    finally:
        _signal_group(pgid, signal.SIGKILL)
    await _settled(protocol.exited)
    await _drain(protocol, ctx)


async def _run_command(
    argv: list[str], cwd: str | None, env: dict[str, str], capture: _Capture, ctx: LeafContext
) -> int:
    loop = asyncio.get_running_loop()
    try:
        transport, protocol = await loop.subprocess_exec(
            lambda: _CommandProtocol(capture),
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
    pgid = transport.get_pid()
    try:
        await _settled(protocol.exited)
        # Background processes the command left in its group would hold the pipes open.
        _signal_group(pgid, signal.SIGKILL)
        await _drain(protocol, ctx)
    except asyncio.CancelledError:
        await _stop(pgid, protocol, ctx)
        raise
    finally:
        transport.close()
    returncode = transport.get_returncode()
    assert returncode is not None
    return returncode


SHARED_DIRECTORY = "sharedDirectory"
"""The spec key the engine adds for a task inside a WorkingDirectory: its key and files."""


def work_root(settings: Settings) -> Path:
    configured = settings.work_dir
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "pausepoint-work"


def work_dirs_of(settings: Settings, execution_id: str) -> Path | None:
    """An execution's scratch directories on this machine, if it made any."""
    directory = work_root(settings) / execution_id
    return directory if directory.is_dir() else None


def remove_work_dirs(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)


def _shared_directory(shared: Mapping[str, Any], ctx: LeafContext) -> Path:
    """The WorkingDirectory's scratch directory, made (with its inputFiles) by its first task.

    The key is ``<execution id>/<task run id>`` as the engine wrote it; it
    is checked to stay under the root, like every input file's name.
    """
    root = work_root(ctx.settings).resolve()
    key = str(shared.get("key", ""))
    directory = (root / key).resolve()
    if not key or root not in directory.parents:
        raise TaskError(f"shell task: bad shared directory key {key!r}")
    if not directory.exists():
        directory.mkdir(parents=True, mode=0o700)
        _write_files(directory, shared.get("files") or {})
    return directory


def _write_files(directory: Path, files: Mapping[str, Any]) -> None:
    for name, content in files.items():
        target = (directory / str(name)).resolve()
        if directory not in target.parents:
            raise TaskError(f"shell task: inputFiles name {name!r} leaves the directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content if isinstance(content, str) else json.dumps(content))


def _output_files(directory: Path, patterns: list[str]) -> dict[str, str]:
    """Files of ``directory`` matching the glob ``patterns``: relative name -> absolute path."""
    found: dict[str, str] = {}
    for pattern in patterns:
        for path in sorted(directory.glob(pattern)):
            if path.is_file() and directory in path.resolve().parents:
                found[path.relative_to(directory).as_posix()] = str(path)
    return found


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

    Refused (TaskError naming the settings) unless ``shell_enabled`` is on or
    ``shell_organizations`` names the task's organization.

    Outputs ``{"exitCode", "stdout" (its last 64 KiB), "vars"}``. On
    cancellation the running command's process group gets SIGTERM, then SIGKILL
    after ``settings.cancel_grace_period`` seconds; it is reaped before
    ``CancelledError`` propagates.
    """
    await check_shell_allowed(ctx)
    commands = read.str_list(spec, "commands", "shell")
    if not commands:
        raise TaskError("shell task: 'commands' must hold at least one command")
    interpreter = read.str_list(spec, "interpreter", "shell", list(DEFAULT_INTERPRETER))
    if not interpreter:
        raise TaskError("shell task: 'interpreter' must not be empty")
    cwd = read.optional_str(spec, "workingDirectory", "shell")
    shared = spec.get(SHARED_DIRECTORY)
    directory = _shared_directory(shared, ctx) if isinstance(shared, Mapping) else None
    if directory is not None:
        _write_files(directory, read.str_map(spec, "inputFiles", "shell"))
        cwd = cwd or str(directory)
    commands = [*read.str_list(spec, "beforeCommands", "shell", []), *commands]
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
    outputs: dict[str, Any] = {
        "exitCode": returncode,
        "stdout": capture.stdout_tail.decode("utf-8", errors="replace"),
        "vars": capture.vars,
    }
    patterns = read.str_list(spec, "outputFiles", "shell", [])
    if patterns and directory is not None:
        outputs["outputFiles"] = _output_files(directory, patterns)
    return outputs
