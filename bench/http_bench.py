"""HTTP figures: control requests/s and latency, and resume → next task through HTTP.

The server runs as a subprocess (`pausepoint server`); this process is the load
generator, so the two do not share an interpreter or an event loop. Every figure
is taken twice: with one server process doing everything, and with
``pausepoint server --workers N`` (HTTP and SSE served by N child processes,
executions run by the parent). Everything is measured through HTTP.

    python bench/http_bench.py [--quick] [--workers N]

``--workers 0`` measures the single process only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from peers.common import human_delays, percentile

HERE = Path(__file__).resolve().parent
KEY = re.compile(r"pp_[A-Za-z0-9_-]+")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Server:
    """A running ``pausepoint server`` subprocess: its address, admin key and process."""

    base: str
    key: str
    process: subprocess.Popen[bytes]
    log_path: Path


@contextlib.contextmanager
def start_server(
    workdir: Path,
    *,
    flows: Path = HERE / "flows",
    db_name: str = "http.db",
    env: dict[str, str] | None = None,
    workers: int = 0,
) -> Iterator[Server]:
    """Start ``pausepoint server`` on a free loopback port with a fresh SQLite file in
    ``workdir`` and the flows (and task modules) in ``flows``; SIGTERM it on exit.
    With ``workers`` HTTP is served by that many child processes (``--workers``).

    The admin key is read from the server's first-start output (``workdir/server.log``).
    """
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "server.log"
    log = open(log_path, "w+")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pausepoint",
            "--db",
            f"sqlite:///{workdir / db_name}",
            "server",
            "--port",
            str(port),
            "--flows",
            str(flows),
            *(["--workers", str(workers)] if workers else []),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    try:
        deadline = time.monotonic() + 30
        key = None
        while time.monotonic() < deadline and key is None:
            time.sleep(0.05)
            log.seek(0)
            text = log.read()
            found = KEY.search(text)
            if found and "serving" in text:
                key = found.group(0)
            if process.poll() is not None:
                raise RuntimeError(f"server exited:\n{text}")
        if key is None:
            raise RuntimeError("server did not start in 30 s")
        while time.monotonic() < deadline:  # "serving" is printed just before it listens
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            time.sleep(0.02)
        yield Server(f"http://127.0.0.1:{port}", key, process, log_path)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@contextlib.contextmanager
def server_process(workdir: Path, workers: int = 0) -> Iterator[tuple[str, str]]:
    """The benchmark's server (bench/flows, ``http.db``): yields its base URL and admin key."""
    with start_server(workdir, workers=workers) as server:
        yield server.base, server.key


@functools.cache
def server_takes_workers() -> bool:
    """Whether this pausepoint's ``server`` command has ``--workers``."""
    usage = subprocess.run(
        [sys.executable, "-m", "pausepoint", "server", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    return "--workers" in usage.stdout


class RawConnection:
    """A minimal HTTP/1.1 keep-alive client: the load generator must cost far less than
    the server it measures (httpx spends milliseconds per request in Python)."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, key: str
    ) -> None:
        self.reader, self.writer, self.host, self.key = reader, writer, host, key

    @classmethod
    async def open(cls, base: str, key: str) -> RawConnection:
        host, _, port = base.removeprefix("http://").partition(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        return cls(reader, writer, f"{host}:{port}", key)

    async def request(self, method: str, path: str, body: bytes = b"") -> int:
        status, _ = await self.exchange(method, path, body)
        return status

    async def exchange(
        self, method: str, path: str, body: bytes = b"", headers: str = ""
    ) -> tuple[int, bytes]:
        """Send one request, read the whole reply: its status and body.

        ``headers`` are extra header lines, each ending in CRLF. Replies must carry a
        Content-Length (the API's JSON replies do); raises ``ConnectionError`` when the
        server closed the connection instead of replying.
        """
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nX-API-Key: {self.key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{headers}\r\n"
        )
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError(f"{method} {path}: the server closed the connection")
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        payload = await self.reader.readexactly(length) if length else b""
        return int(status_line.split()[1]), payload

    def close(self) -> None:
        self.writer.close()


async def control_load(base: str, key: str, clients: int, seconds: float) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=base, headers={"X-API-Key": key}, limits=limits, timeout=30
    ) as http:
        ids = []
        for _ in range(clients):
            reply = await http.post(
                "/api/v1/executions", json={"namespace": "bench", "flow_id": "toggle"}
            )
            reply.raise_for_status()
            ids.append(reply.json()["id"])
        latencies: list[float] = []
        errors = 0
        stop_at = time.perf_counter() + seconds

        async def one_client(execution_id: str) -> None:
            nonlocal errors
            ops = [("POST", "pause"), ("GET", "state"), ("POST", "resume"), ("GET", "state")]
            connection = await RawConnection.open(base, key)
            n = 0
            try:
                while time.perf_counter() < stop_at:
                    method, op = ops[n % len(ops)]
                    n += 1
                    started = time.perf_counter()
                    status = await connection.request(
                        method, f"/api/v1/executions/{execution_id}/{op}"
                    )
                    latencies.append((time.perf_counter() - started) * 1000)
                    if status >= 500 or status in (401, 403, 404):
                        errors += 1
            finally:
                connection.close()

        started = time.perf_counter()
        await asyncio.gather(*(one_client(i) for i in ids))
        elapsed = time.perf_counter() - started
        for execution_id in ids:
            await http.post(
                f"/api/v1/executions/{execution_id}/terminate", json={"reason": "bench over"}
            )
    return {
        "clients": clients,
        "seconds": round(elapsed, 2),
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 50), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "errors": errors,
    }


def _epoch(at: str) -> float:
    return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()


async def http_resume_latency(base: str, key: str, count: int) -> dict[str, Any]:
    flow = "id: http_resumes\nnamespace: bench\ntasks:\n" + "".join(
        f"  - id: wait{i}\n    type: pause\n  - id: step{i}\n    type: return\n    format: x\n"
        for i in range(count)
    )
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": key}, timeout=30) as http:
        (
            await http.put(
                "/api/v1/flows/bench/http_resumes",
                content=flow,
                headers={"Content-Type": "application/x-yaml"},
            )
        ).raise_for_status()
        execution_id = (
            await http.post(
                "/api/v1/executions", json={"namespace": "bench", "flow_id": "http_resumes"}
            )
        ).json()["id"]
        after = 0
        for i, delay in enumerate(human_delays(count)):
            while True:  # wait until this pause point is open
                state = (await http.get(f"/api/v1/executions/{execution_id}/state")).json()
                if state["state"] == "PAUSED":
                    break
                await asyncio.sleep(0.002)
            events = (
                await http.get(f"/api/v1/executions/{execution_id}/events", params={"after": after})
            ).json()["items"]
            after = events[-1]["seq"] if events else after
            await asyncio.sleep(delay)  # a person answers some time after the pause
            before = time.time()
            (await http.post(f"/api/v1/executions/{execution_id}/resume")).raise_for_status()
            while True:
                events = (
                    await http.get(
                        f"/api/v1/executions/{execution_id}/events", params={"after": after}
                    )
                ).json()["items"]
                started = [
                    e
                    for e in events
                    if e["type"] == "task.started" and e["data"]["task_id"] == f"step{i}"
                ]
                if started:
                    latencies.append((_epoch(started[0]["at"]) - before) * 1000)
                    break
                await asyncio.sleep(0.002)
    return {
        "resumes": count,
        "p50_ms": round(percentile(latencies, 50), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
    }


FRAME_START = b"\nid: "
CHUNKED_END = b"\r\n0\r\n\r\n"


class _FrameCounter(asyncio.Protocol):
    """Counts SSE frames as they arrive, in whole reads (C-speed ``bytes.count``, no copy):
    the load process shares the two cores with the server, so a follower must cost it as
    little as a browser would."""

    def __init__(self, ready: asyncio.Event) -> None:
        self.ready = ready
        self.events = 0
        self.tail = b""  # the last bytes read: a frame's start may straddle two reads
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.events += (self.tail + data[:4]).count(FRAME_START) + data.count(FRAME_START)
        self.tail = (self.tail + data)[-7:] if len(data) < 7 else data[-7:]
        if self.events:
            # Following: the execution's first events have arrived, so the server is
            # done setting this stream up (auth, the catch-up read) before it is timed.
            self.ready.set()
        if self.tail.endswith(CHUNKED_END) and self.transport is not None:
            self.transport.close()  # the stream ended (after the terminal event)

    def connection_lost(self, exc: Exception | None) -> None:
        self.ready.set()
        if not self.ended.done():
            self.ended.set_result(None)


async def sse_follower(base: str, key: str, execution_id: str, ready: asyncio.Event) -> int:
    """One SSE client on a raw connection; returns how many events it read."""
    host, _, port = base.removeprefix("http://").partition(":")
    loop = asyncio.get_running_loop()
    transport, counter = await loop.create_connection(lambda: _FrameCounter(ready), host, int(port))
    transport.write(
        (
            f"GET /api/v1/executions/{execution_id}/events HTTP/1.1\r\nHost: {host}\r\n"
            f"X-API-Key: {key}\r\nAccept: text/event-stream\r\n\r\n"
        ).encode()
    )
    try:
        await counter.ended
    finally:
        ready.set()
        transport.close()
    return counter.events


async def checkpoints_with_followers(
    base: str, key: str, steps: int, followers: int, step_ms: float | None = None
) -> dict[str, Any]:
    """Steps/s of one execution while ``followers`` SSE clients follow it live.

    Without ``step_ms`` the steps are pure (``return``): the engine runs flat out and
    the followers compete with it for the cores. With ``step_ms`` each step is a
    python task that takes that long, a load that leaves the engine room.
    """
    if step_ms is None:
        step = "    type: return\n    format: x\n"
    else:
        step = (
            "    type: python\n    function: bench_http_tasks:pace\n"
            f"    kwargs: {{ms: {step_ms}}}\n"
        )
    flow = "id: followed\nnamespace: bench\ntasks:\n  - id: gate\n    type: pause\n" + "".join(
        f"  - id: s{i}\n{step}" for i in range(steps)
    )
    async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": key}, timeout=60) as http:
        (
            await http.put(
                "/api/v1/flows/bench/followed",
                content=flow,
                headers={"Content-Type": "application/x-yaml"},
            )
        ).raise_for_status()
        execution_id = (
            await http.post(
                "/api/v1/executions", json={"namespace": "bench", "flow_id": "followed"}
            )
        ).json()["id"]
        while (await http.get(f"/api/v1/executions/{execution_id}/state")).json()[  # noqa: ASYNC110
            "state"
        ] != "PAUSED":
            await asyncio.sleep(0.01)
        before = await checkpoint_totals(http)
        readies = [asyncio.Event() for _ in range(followers)]
        clients = [
            asyncio.create_task(sse_follower(base, key, execution_id, ready)) for ready in readies
        ]
        await asyncio.gather(*(ready.wait() for ready in readies))
        started = time.perf_counter()
        (await http.post(f"/api/v1/executions/{execution_id}/resume")).raise_for_status()
        while (await http.get(f"/api/v1/executions/{execution_id}/state")).json()[  # noqa: ASYNC110
            "state"
        ] != "COMPLETED":
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
        delivered = await asyncio.gather(*clients)
        after = await checkpoint_totals(http)
    transactions = after[1] - before[1]
    figures = {
        "followers": followers,
        "steps": steps,
        "steps_per_s": round(steps / elapsed, 1),
        # None with --workers: /metrics is an HTTP worker's, and the checkpoints are
        # written by the parent process.
        "checkpoint_mean_ms": (
            round(1000 * (after[0] - before[0]) / transactions, 3) if transactions else None
        ),
        "events_per_follower_min": min(delivered) if delivered else None,
    }
    if step_ms is not None:
        # What the engine adds to each step beyond the step's own sleep.
        figures["step_ms"] = step_ms
        figures["overhead_per_step_ms"] = round(1000 * elapsed / steps - step_ms, 3)
    return figures


async def checkpoint_totals(http: httpx.AsyncClient) -> tuple[float, int]:
    """Seconds spent in checkpoint transactions so far, and how many (from /metrics)."""
    text = (await http.get("/metrics")).text
    total = re.search(r"^pausepoint_checkpoint_seconds_sum (\S+)$", text, re.M)
    count = re.search(r"^pausepoint_checkpoint_seconds_count (\S+)$", text, re.M)
    assert total is not None and count is not None, "checkpoint histogram missing from /metrics"
    return float(total.group(1)), int(float(count.group(1)))


async def measure(workdir: Path, quick: bool, workers: int = 0) -> dict[str, Any]:
    """Every figure against one server: a single process, or one with ``workers`` HTTP workers."""
    with server_process(workdir, workers) as (base, key):
        load = await control_load(base, key, clients=32, seconds=3 if quick else 10)
        resume = await http_resume_latency(base, key, 5 if quick else 100)
        steps = 500 if quick else 2000
        # Alternate quiet and followed runs, best of each: one noisy moment on a
        # two-core machine should not decide the comparison.
        rounds: dict[int, list[dict[str, Any]]] = {0: [], 100: []}
        for _ in range(1 if quick else 3):
            for followers in rounds:
                rounds[followers].append(
                    await checkpoints_with_followers(base, key, steps, followers)
                )
        # The same with steps that take 10 ms each: the engine is not saturated, so
        # what the followers cost shows as step overhead and checkpoint time.
        paced: dict[int, list[dict[str, Any]]] = {0: [], 100: []}
        for _ in range(1 if quick else 3):
            for followers in paced:
                paced[followers].append(
                    await checkpoints_with_followers(
                        base, key, 50 if quick else 200, followers, step_ms=10
                    )
                )
    return {
        "control_load": load,
        "resume_latency": resume,
        "sse_followers": [
            max(runs, key=lambda run: run["steps_per_s"]) for runs in rounds.values()
        ],
        "sse_followers_paced": [
            max(runs, key=lambda run: run["steps_per_s"]) for runs in paced.values()
        ],
    }


async def run(workdir: Path, quick: bool, workers: int = 2) -> dict[str, Any]:
    """The single-process figures at the top level, and under ``"workers"`` the same
    measured with ``pausepoint server --workers N`` (``workers`` 0: not measured)."""
    results = await measure(workdir / "single", quick)
    if workers:
        if server_takes_workers():
            results["workers"] = {
                "workers": workers,
                **await measure(workdir / "workers", quick, workers),
            }
        else:
            reason = "skipped: this pausepoint's `server` has no --workers option"
            print(f"http_bench: --workers {workers} {reason}", file=sys.stderr)
            results["workers"] = {"workers": workers, "skipped": reason}
    return results


def main() -> None:
    import json
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (a smoke test)")
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        metavar="N",
        help="also measure `pausepoint server --workers N` (default 2; 0: only one process)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(asyncio.run(run(Path(tmp), args.quick, args.workers)), indent=2))


if __name__ == "__main__":
    main()
