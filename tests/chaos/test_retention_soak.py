"""Retention under sustained load: the database file and the server's memory stay flat
and control latency does not drift while the server purges what has ended.

A real ``pausepoint server`` (a subprocess, a fresh SQLite file) keeps ended executions
for a short time (PT5S here, PT30S in the full run) and purges every second (every ten
seconds in the full run); this process starts short executions and paused ones at a
constant rate, resumes and cancels them. Every window records the database file's
size, the server's RSS and the p99 of control calls. The quick run (40 s) is in the
normal suite; ``PAUSEPOINT_CHAOS_FULL=1`` (``make soak``) runs 30 minutes.

Judged: nothing answered 5xx or failed to answer; held executions (never resumed) are
all still paused at the end, untouched by the purges; most executions were purged; the
file's largest size in the second half is within a quarter of its largest in the first
half after the warm-up (free pages are reused, so it plateaus); RSS by the soak's memory
verdict; p99 by its latency verdict (windows in which the rest of the machine was busy
are set aside, and an inconclusive verdict is reported, not passed).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from http_bench import start_server  # noqa: E402
from peers.common import percentile  # noqa: E402
from soak_report import (  # noqa: E402
    cpu_seconds,
    latency_verdict,
    load_cpu_seconds,
    machine_cpu_seconds,
    memory_verdict,
    rss_mib,
    set_aside,
)

FULL = os.environ.get("PAUSEPOINT_CHAOS_FULL") == "1"
SECONDS = 1800.0 if FULL else 40.0
WINDOW = 30.0 if FULL else 2.0
RETENTION = "PT30S" if FULL else "PT5S"
PURGE_INTERVAL = 10.0 if FULL else 1.0
# Until the first executions are past their retention and purged, the file grows.
WARMUP = 120.0 if FULL else 10.0
STARTS_PER_SECOND = 20.0
HELD = 10  # paused executions never resumed: the purges must leave them alone

FLOWS = {
    "quick": """
id: quick
namespace: soak.retention
tasks:
  - id: one
    type: return
    format: "{{ execution.id }}"
  - id: say
    type: log
    message: "quick {{ outputs.one.value }}"
  - id: two
    type: return
    format: done
""",
    "hold": """
id: hold
namespace: soak.retention
tasks:
  - id: wait
    type: pause
  - id: after
    type: return
    format: resumed
""",
}


@dataclass
class Window:
    control_ms: list[float] = field(default_factory=list)


@dataclass
class Load:
    http: httpx.AsyncClient
    errors: list[str] = field(default_factory=list)
    started: int = 0
    window: Window = field(default_factory=Window)
    held: list[str] = field(default_factory=list)

    async def call(self, method: str, path: str, body: Any = None, control: bool = False) -> Any:
        began = time.perf_counter()
        try:
            response = await self.http.request(method, path, json=body)
        except httpx.HTTPError as error:
            self.errors.append(f"{method} {path}: {error!r}")
            return None
        if control:
            self.window.control_ms.append((time.perf_counter() - began) * 1000)
        if response.status_code >= 500 or response.status_code in (400, 401, 403, 404):
            self.errors.append(f"{method} {path}: {response.status_code} {response.text[:200]}")
            return None
        return response.json() if response.status_code < 300 else None

    async def start(self, flow_id: str) -> str | None:
        body = {"namespace": "soak.retention", "flow_id": flow_id}
        made = await self.call("POST", "/api/v1/executions", body)
        self.started += made is not None
        return None if made is None else str(made["id"])

    async def until_paused(self, execution_id: str) -> bool:
        for _ in range(200):
            state = await self.call("GET", f"/api/v1/executions/{execution_id}/state")
            if state is not None and state["state"] == "PAUSED":
                return True
            await asyncio.sleep(0.05)
        self.errors.append(f"{execution_id} never paused")
        return False

    async def hold_and_release(self, rng: random.Random) -> None:
        execution_id = await self.start("hold")
        if execution_id is None or not await self.until_paused(execution_id):
            return
        action = "resume" if rng.random() < 0.8 else "cancel"
        path = f"/api/v1/executions/{execution_id}/{action}"
        await self.call("POST", path, {}, control=True)


def sizes(db: Path) -> tuple[int, int]:
    wal = db.with_name(db.name + "-wal")
    return db.stat().st_size, wal.stat().st_size if wal.exists() else 0


@pytest.mark.soak
@pytest.mark.timeout(int(SECONDS) + 300)
async def test_retention_keeps_the_database_and_memory_flat_under_load(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    for name, source in FLOWS.items():
        (flows / f"{name}.yaml").write_text(source)
    env = {
        "PAUSEPOINT_RETENTION": json.dumps({"*": RETENTION}),
        "PAUSEPOINT_PURGE_INTERVAL": str(PURGE_INTERVAL),
    }
    rng = random.Random(20)
    series: list[dict[str, Any]] = []
    with start_server(tmp_path / "work", flows=flows, db_name="soak.db", env=env) as server:
        db = tmp_path / "work" / "soak.db"
        pid = server.process.pid
        headers = {"X-API-Key": server.key}
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(
            base_url=server.base, headers=headers, timeout=30, limits=limits
        ) as http:
            load = Load(http)
            for _ in range(HELD):
                held = await load.start("hold")
                if held is not None and await load.until_paused(held):
                    load.held.append(held)
            began = time.monotonic()
            pending: set[asyncio.Task[Any]] = set()
            next_window = began + WINDOW
            marks = (machine_cpu_seconds(), cpu_seconds(pid), load_cpu_seconds())
            while time.monotonic() - began < SECONDS:
                work = load.start("quick") if rng.random() < 0.7 else load.hold_and_release(rng)
                task = asyncio.create_task(work)
                pending.add(task)
                task.add_done_callback(pending.discard)
                await asyncio.sleep(rng.expovariate(STARTS_PER_SECOND))
                if time.monotonic() >= next_window:
                    now_marks = (machine_cpu_seconds(), cpu_seconds(pid), load_cpu_seconds())
                    machine, server_cpu, own = (
                        b - a for a, b in zip(marks, now_marks, strict=True)
                    )
                    marks = now_marks
                    db_bytes, wal_bytes = sizes(db)
                    ms = load.window.control_ms
                    series.append(
                        {
                            "t": round(time.monotonic() - began, 1),
                            "db_mib": db_bytes / 2**20,
                            "wal_mib": wal_bytes / 2**20,
                            "rss_mib": rss_mib(pid),
                            "control_p99_ms": percentile(ms, 99) if ms else None,
                            "control_calls": len(ms),
                            "others_cpu_pct": max(0.0, machine - server_cpu - own) / WINDOW * 100,
                        }
                    )
                    load.window = Window()
                    next_window += WINDOW
            await asyncio.gather(*pending)
            still = [await load.call("GET", f"/api/v1/executions/{id_}/state") for id_ in load.held]
    kept = sqlite3.connect(db).execute("SELECT count(*) FROM executions").fetchone()[0]
    summary = {
        "started": load.started,
        "kept": kept,
        "windows": series[-3:],
        "errors": load.errors[:5],
    }
    print(json.dumps({"retention_soak": {"started": load.started, "series": series}}))

    assert load.errors == [], summary
    assert len(load.held) == HELD and all(s is not None and s["state"] == "PAUSED" for s in still)
    assert kept < load.started / 4, f"{kept} of {load.started} executions kept: {summary}"

    late = [s for s in series if s["t"] >= WARMUP]
    first = [s["db_mib"] for s in late if s["t"] < (WARMUP + SECONDS) / 2]
    second = [s["db_mib"] for s in late if s["t"] >= (WARMUP + SECONDS) / 2]
    assert first and second, summary
    assert max(second) <= max(first) * 1.25, f"database grew: {max(first)} -> {max(second)} MiB"

    times = [s["t"] for s in series]
    memory = memory_verdict(
        times, [s["rss_mib"] for s in series], run_seconds=SECONDS, warmup=WARMUP
    )
    assert memory.ok, memory.detail
    aside = set_aside([s["others_cpu_pct"] for s in series], [None] * len(series))
    latency = latency_verdict(
        times, [s["control_p99_ms"] for s in series], warmup=WARMUP, aside=aside
    )
    if latency.conclusive:
        assert latency.ok, latency.detail
    else:
        pytest.skip(f"control p99 drift not judged: {latency.detail}")
