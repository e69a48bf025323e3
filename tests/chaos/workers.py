"""Starting and SIGKILLing ``tests.chaos.worker`` subprocesses."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 30.0


class WorkerProcess:
    """One serving worker; its stderr goes to ``log_path``."""

    def __init__(
        self, process: subprocess.Popen[bytes], log_path: Path, port: int | None = None
    ) -> None:
        self.process = process
        self.log_path = log_path
        self.pid = process.pid
        self.port = port  # where it serves the HTTP API, if it does

    def __repr__(self) -> str:
        return f"worker[{self.pid}]"

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    async def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        assert self.process.stdout is not None
        try:
            line = await asyncio.wait_for(asyncio.to_thread(self.process.stdout.readline), timeout)
        except TimeoutError:
            await self.kill()  # unblocks the reading thread with EOF
            raise AssertionError(
                f"worker {self.pid} did not print 'ready' within {timeout}s\n{self.log_tail()}"
            ) from None
        if line.strip() != b"ready":
            await self.kill()
            raise AssertionError(
                f"worker {self.pid} said {line!r} instead of 'ready'\n{self.log_tail()}"
            )

    async def kill(self) -> None:
        """SIGKILL (no cleanup of any kind in the worker) and reap."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        await asyncio.to_thread(self.process.wait)
        if self.process.stdout is not None:
            self.process.stdout.close()

    async def stop(self, grace: float = 5.0) -> None:
        """SIGTERM (graceful: leases released), SIGKILL after ``grace`` seconds."""
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(self.process.wait, grace)
        await self.kill()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_text().splitlines()[-lines:]
        return f"--- {self!r} ({self.log_path.name}), last {len(text)} lines:\n" + (
            "\n".join(text) or "(empty)"
        )


def start_worker(
    db_url: str,
    run_log: Path,
    log_path: Path,
    port: int | None = None,
    *,
    poll_interval: float | None = None,
) -> WorkerProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PAUSEPOINT_")}
    env["PYTHONUNBUFFERED"] = "1"
    with log_path.open("wb") as stderr:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.chaos.worker",
                "--db",
                db_url,
                "--run-log",
                str(run_log),
                *(["--port", str(port)] if port is not None else []),
                *(["--poll-interval", str(poll_interval)] if poll_interval is not None else []),
            ],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    return WorkerProcess(process, log_path, port)
