"""Helpers for driving the ``pausepoint`` CLI as a real subprocess.

``Cli`` runs one command to completion (or starts one in the background) with
its own database and a fast poll interval; ``Terminal`` runs one in a
pseudo-terminal (stdlib ``pty``/``os.openpty``) so that the CLI sees a tty,
and reads its output until a pattern appears or a deadline passes.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pausepoint.testing import assert_eventually

BIN = Path(sys.executable).parent
PAUSEPOINT = BIN / "pausepoint"
COMMAND = [str(PAUSEPOINT)] if PAUSEPOINT.exists() else [sys.executable, "-m", "pausepoint"]
# (both absolute: the pseudo-terminal helper execs COMMAND[0] directly)

EXECUTION_ID = re.compile(r"\b[0-9a-f]{24}\b")
ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])")


# What a command that needs neither the database nor a runtime must not import.
HEAVY_MODULES = (
    "fastapi",
    "sqlalchemy",
    "pausepoint.service",
    "pausepoint.store",
    "pausepoint.runtime",
)
# What a remote `state` does not use either, each a noticeable part of its start-up: the
# YAML parser (only commands that send a flow read one), httpx's own command line (with
# click and pygments) and rich's tables.
NOT_USED_BY_A_REMOTE_STATE = (
    "yaml",
    "httpx._main",
    "click",
    "pygments",
    "rich.table",
)
_PROBE = """\
import json, sys
from pausepoint.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = json.loads(%r)
print(json.dumps(sorted(m for m in heavy if m in sys.modules)), file=sys.stderr)
"""


def heavy_modules_probe(*args: str, modules: Sequence[str] = HEAVY_MODULES) -> list[str]:
    """A command line running ``pausepoint ARGS`` in a fresh interpreter, then printing
    (as the last line of stderr) which of ``modules`` it imported."""
    return [sys.executable, "-c", _PROBE % json.dumps(list(modules)), *args]


def heavy_modules_in(stderr: str) -> list[str]:
    """The modules a :func:`heavy_modules_probe` reported."""
    lines = stderr.strip().splitlines()
    assert lines, "the probe printed nothing"
    loaded: list[str] = json.loads(lines[-1])
    return loaded


def strip_ansi(text: str) -> str:
    return ANSI.sub("", text).replace("\r", "")


def base_env(**extra: str) -> dict[str, str]:
    """The caller's environment without anything that would change the CLI's output."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PAUSEPOINT_", "SECRET_"))
        and key not in ("COLUMNS", "LINES", "FORCE_COLOR", "NO_COLOR", "TERM")
    }
    env["PAUSEPOINT_POLL_INTERVAL"] = "0.05"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@dataclass
class Result:
    args: Sequence[str]
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __str__(self) -> str:
        return (
            f"pausepoint {' '.join(self.args)} -> exit {self.code}\n"
            f"--- stdout ---\n{self.stdout}--- stderr ---\n{self.stderr}"
        )


class Cli:
    """Runs ``pausepoint --db DB ...`` in a subprocess with a fast poll interval."""

    def __init__(self, db: Path, cwd: Path, **env: str) -> None:
        self.db = db
        self.url = f"sqlite:///{db}"
        self.cwd = cwd
        self.env = base_env(**env)

    def argv(self, args: Sequence[str]) -> list[str]:
        return [*COMMAND, "--db", self.url, *args]

    def __call__(self, *args: str, timeout: float = 30.0, stdin: str = "") -> Result:
        completed = subprocess.run(
            self.argv(args),
            input=stdin,
            capture_output=True,
            text=True,
            cwd=self.cwd,
            env=self.env,
            timeout=timeout,
            check=False,
        )
        return Result(args, completed.returncode, completed.stdout, completed.stderr)

    def many(self, *commands: Sequence[str], timeout: float = 30.0) -> list[Result]:
        """Run independent commands concurrently (each in its own process)."""
        started = [
            (
                args,
                subprocess.Popen(
                    self.argv(args),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    cwd=self.cwd,
                    env=self.env,
                ),
            )
            for args in commands
        ]
        results = []
        for args, process in started:
            try:
                out, err = process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                out, err = process.communicate()
                raise AssertionError(f"pausepoint {' '.join(args)} did not finish") from None
            results.append(Result(args, process.returncode, out, err))
        return results

    def start(self, *args: str) -> Background:
        """Start a command in the background with stdin not a tty."""
        process = subprocess.Popen(
            self.argv(args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.cwd,
            env=self.env,
        )
        return Background(args, process)

    # -- reading the database through the CLI --------------------------------

    def show(self, execution_id: str) -> dict[str, Any]:
        result = self("show", execution_id, "--json")
        assert result.code == 0, str(result)
        data: dict[str, Any] = json.loads(result.stdout)
        return data

    def state(self, execution_id: str) -> dict[str, Any]:
        result = self("state", execution_id, "--json")
        assert result.code == 0, str(result)
        data: dict[str, Any] = json.loads(result.stdout)
        return data

    def wait_state(
        self, execution_id: str, states: set[str], *, timeout: float = 20.0
    ) -> dict[str, Any]:
        async def in_state() -> dict[str, Any]:
            view = await asyncio.to_thread(self.show, execution_id)
            assert view["state"] in states, f"it is {view['state']}"
            return view

        # The CLI tests are synchronous: the one polling helper runs in a loop of its own.
        return asyncio.run(
            assert_eventually(
                in_state, timeout=timeout, what=f"execution {execution_id} in {sorted(states)}"
            )
        )


class Background:
    """A CLI process running in the background; its stdout is read line by line."""

    def __init__(self, args: Sequence[str], process: subprocess.Popen[str]) -> None:
        self.args = args
        self.process = process
        self.lines: list[str] = []

    def read_execution_id(self, timeout: float = 20.0) -> str:
        """The id the (non-interactive) ``run`` prints first."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], 0.1)
            if not ready:
                if self.process.poll() is not None:
                    break
                continue
            line = self.process.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            match = EXECUTION_ID.search(line)
            if match:
                return match.group(0)
        self.kill()
        raise AssertionError(f"no execution id printed within {timeout}s: {self.lines}")

    def finish(self, timeout: float = 30.0) -> Result:
        try:
            out, err = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, err = self.process.communicate()
            raise AssertionError(
                f"pausepoint {' '.join(self.args)} still running after {timeout}s:\n{out}{err}"
            ) from None
        return Result(self.args, self.process.returncode, "".join(self.lines) + out, err)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


# -- pseudo-terminal -----------------------------------------------------------

# Runs in the child: make the pty (already on fds 0-2, in a new session) the
# controlling terminal, so that Ctrl-C typed into it sends SIGINT, then exec.
_TAKE_TTY = (
    "import fcntl, os, sys, termios; "
    "fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


class Terminal:
    """A CLI process whose stdin, stdout and stderr are a pseudo-terminal."""

    def __init__(
        self, argv: Sequence[str], *, cwd: Path, env: dict[str, str], columns: int = 200
    ) -> None:
        import fcntl
        import struct
        import termios

        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
        env = {**env, "TERM": "xterm"}
        self.process = subprocess.Popen(
            [sys.executable, "-c", _TAKE_TTY, *argv],  # argv[0] is an absolute path
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=cwd,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
        os.close(slave)
        self.master = master
        self.raw = b""
        self.pos = 0  # how much of the (ANSI-stripped) text expect() has consumed

    @property
    def text(self) -> str:
        return strip_ansi(self.raw.decode("utf-8", "replace"))

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # EIO: the child closed the terminal
            return False
        if not chunk:
            return False
        self.raw += chunk
        return True

    def expect(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """Wait for ``pattern`` (a regex) in the output after the previous match."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        alive = True
        while True:
            match = regex.search(self.text, self.pos)
            if match:
                self.pos = match.end()
                return match
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not alive:
                raise AssertionError(
                    f"{pattern!r} not seen within {timeout}s "
                    f"(exit {self.process.poll()}); output:\n{self.text}"
                )
            alive = self._read(min(remaining, 0.1))

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def sendline(self, text: str) -> None:
        self.send(text.encode() + b"\r")

    def wait(self, timeout: float = 20.0) -> int:
        """Read until the process exits; its exit code."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                self.close()
                raise AssertionError(f"process still running after {timeout}s:\n{self.text}")
            self._read(0.05)
        while self._read(0.05) and self._pending():
            pass
        return self.process.returncode

    def _pending(self) -> bool:
        ready, _, _ = select.select([self.master], [], [], 0)
        return bool(ready)

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        if self.master >= 0:
            os.close(self.master)
            self.master = -1
