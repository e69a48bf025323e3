"""How fast this machine's cores run right now, measured beside a load.

A virtual machine on a shared host slows down now and then for reasons invisible from
inside it: other tenants take the caches, the memory bandwidth or the core itself, and
the guest charges the lost time to whatever process was running. The same code then
needs more CPU time. On this 2-core machine the soak once saw the server and the load
generator both need about 1.6 times their usual CPU for the same requests, for a minute
and a half, with nothing else running; latency went up fivefold, and the drift verdict
blamed the server.

This probe times a fixed piece of pure-Python work ten times a second, in its own
process, as the CPU time of its own thread: waiting for a core does not count, only how
fast a core runs. Its median over a window, against its usual figure in the same run,
tells whether the machine was slow in that window. It uses about 3% of one core.

    python bench/speed_probe.py        # prints one figure (µs of CPU per piece) per line
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import time
from pathlib import Path

PERIOD_SECONDS = 0.1
SCRIPT = str(Path(__file__).resolve())


def work() -> int:
    """The fixed piece of work: about 3 ms of arithmetic and a loop, no allocation to speak of."""
    total = 0
    for i in range(40_000):
        total += i * i % 7
    return total


def measure() -> float:
    """CPU time of one piece of work, in microseconds."""
    started = time.thread_time()
    work()
    return (time.thread_time() - started) * 1e6


def main() -> None:
    while True:
        print(f"{measure():.0f}", flush=True)
        time.sleep(PERIOD_SECONDS)


class SpeedProbe:
    """The probe as a subprocess; ``take_window()`` gives the median since the last call."""

    def __init__(self) -> None:
        self.process: asyncio.subprocess.Process | None = None
        self.reader: asyncio.Task[None] | None = None
        self.window: list[float] = []

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, SCRIPT, stdout=asyncio.subprocess.PIPE
        )
        self.reader = asyncio.create_task(self.read())

    async def read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        while line := await self.process.stdout.readline():
            self.window.append(float(line))

    def take_window(self) -> float | None:
        """Median µs per piece of work since the last call; None if none was timed."""
        window, self.window = self.window, []
        return statistics.median(window) if window else None

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        main()
