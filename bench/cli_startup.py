"""How long the ``pausepoint`` command line takes to answer: ``--help`` and a remote ``state``.

A short command's cost is nearly all start-up: the interpreter, then the imports
of what the command uses. This script starts a real server on loopback (its own
SQLite file in a temporary directory), creates an API key and an execution that
waits at a pause point, then runs each command N times as a fresh subprocess
and prints the minimum and median of its wall time and of its CPU time
(user + system, from the child's resource usage). On a shared machine the CPU
time's minimum is the figure to compare: waiting for a core does not count.

    PYTHONPATH=src python bench/cli_startup.py                  # this tree, 10 runs
    python bench/cli_startup.py --src /old/src --src src -n 20  # two trees, interleaved

With several ``--src`` trees the runs alternate between them, so a before and an
after are measured in the same minute; the server runs from the first tree.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

FLOW = """\
id: gate
namespace: bench.cli
tasks:
  - id: approval
    type: pause
"""
EXECUTION_ID = re.compile(r"\b[0-9a-f]{24}\b")
KEY = re.compile(r"\bpp_\S+")


@dataclass
class Figures:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def environment(src: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAUSEPOINT_")}
    if src is not None:
        env["PYTHONPATH"] = str(Path(src).resolve())
    env.update(extra)
    return env


def pausepoint(*args: str, env: dict[str, str]) -> str:
    """Run ``pausepoint ARGS`` to completion; its stdout (a failure raises)."""
    completed = subprocess.run(
        [sys.executable, "-m", "pausepoint", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"pausepoint {' '.join(args)} failed:\n{completed.stderr}")
    return completed.stdout


def timed(argv: Sequence[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run of ``argv`` (its output is discarded)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    completed = subprocess.run(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=False
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{completed.stderr.decode()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def running_server(workdir: Path, src: str | None) -> Iterator[tuple[str, str]]:
    """A server on a free loopback port; its URL and an admin API key."""
    db = f"sqlite:///{workdir / 'bench.db'}"
    env = environment(src)
    key_output = pausepoint("--db", db, "keys", "create", "--role", "admin", env=env)
    key = KEY.search(key_output)
    if key is None:
        raise RuntimeError(f"no key in the output of `keys create`:\n{key_output}")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "pausepoint", "--db", db, "server", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.1)
        yield url, key.group(0)
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--runs", type=int, default=10, help="runs of each command")
    parser.add_argument(
        "--src", action="append", help="a source tree to put on PYTHONPATH (repeatable)"
    )
    options = parser.parse_args()
    trees: list[str | None] = list(options.src or [None])

    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp), trees[0]) as (url, key):
        remote = environment(trees[0], PAUSEPOINT_URL=url, PAUSEPOINT_API_KEY=key)
        flow = Path(tmp) / "gate.yaml"
        flow.write_text(FLOW)
        pausepoint("flows", "apply", str(flow), env=remote)
        found = EXECUTION_ID.search(pausepoint("start", "bench.cli.gate", env=remote))
        if found is None:
            raise RuntimeError("`start` printed no execution id")
        execution_id = found.group(0)

        commands = {
            "--help": ["--help"],
            "state ID": ["state", execution_id],
            "state ID --json": ["state", execution_id, "--json"],
        }
        figures = {(tree, name): Figures() for tree in trees for name in commands}
        for _ in range(options.runs):
            for name, args in commands.items():
                for tree in trees:
                    env = environment(tree, PAUSEPOINT_URL=url, PAUSEPOINT_API_KEY=key)
                    wall, cpu = timed([sys.executable, "-m", "pausepoint", *args], env)
                    figures[tree, name].wall.append(wall)
                    figures[tree, name].cpu.append(cpu)

    print(f"{options.runs} runs each; seconds (min / median)")
    print(f"{'tree':<24} {'command':<16} {'wall':>15} {'cpu':>15}")
    for (tree, name), measured in figures.items():
        walls = f"{min(measured.wall):.3f} / {statistics.median(measured.wall):.3f}"
        cpus = f"{min(measured.cpu):.3f} / {statistics.median(measured.cpu):.3f}"
        print(f"{tree or 'PYTHONPATH':<24} {name:<16} {walls:>15} {cpus:>15}")


if __name__ == "__main__":
    main()
