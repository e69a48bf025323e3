"""Soak: sustained mixed load on ``pausepoint server`` for minutes, then proof nothing was lost.

The server runs as a subprocess (fresh SQLite file, soak flows written to a work dir);
this process is the load, at steady open-loop rates (arrivals never wait for replies):

- starts of three flows: ``approval`` (a Pause task resumed with typed inputs, sometimes
  cancelled, sometimes first resumed with a bad input to get its 422), ``steps`` (return,
  python and a short sleep step, runs by itself) and ``long`` (sleep steps for several
  seconds: paused, injected into, resumed, then cancelled, terminated or left to finish);
- the control requests these scenarios send, plus reads (state, execution, list, audit);
- a rotating crowd of SSE followers, each following one live execution to its end.

Every window it records requests/s by kind, p50/p99 of control requests, the server's
resident memory and CPU. After the load it drains what is left (resumes every open pause
point) and checks that nothing was lost: every execution ended in the state its applied
commands call for, every accepted command is in the audit and was decided exactly as its
reply said, typed resume inputs reached the flow, every event log and SSE stream was
gapless and ended with its terminal event, the server logged no traceback and stopped
when asked. Then the verdicts:
memory must not grow, latency must not drift (see ``memory_verdict``, ``latency_verdict``).

    python bench/soak.py --minutes 2 --out docs/reliability     # quick (the test suite's)
    python bench/soak.py --minutes 30 --out docs/reliability    # full (`make soak`)

Writes soak.json, soak-latency.png and soak-memory.png into ``--out``. Exits 0 when every
check and verdict passed, 1 when one failed, 2 when nothing failed but a verdict could
not be judged (the machine was too busy with other work to measure latency drift).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import tempfile
import time
import traceback
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from http_bench import RawConnection, Server, start_server  # noqa: E402
from soak_checks import NAMESPACE, drain, server_side_errors, verify  # noqa: E402
from soak_report import (  # noqa: E402
    TERMINAL,
    Recorder,
    cpu_seconds,
    draw,
    judge,
    load_cpu_seconds,
    machine,
    machine_cpu_seconds,
    progress,
    rss_mib,
    summarize_window,
    waiting_seconds,
)
from speed_probe import SpeedProbe  # noqa: E402

from pausepoint.models import TERMINAL_EVENT_TYPES  # noqa: E402

LONG_STEPS, LONG_STEP_SECONDS = 16, 0.4
# uvicorn closes keep-alive connections idle for 5 s; reopen before that rather than
# race its close (which would read as a transport error).
IDLE_REOPEN_SECONDS = 2.5
REQUEST_TIMEOUT = 30.0

TASKS_MODULE = '''"""Task functions of the soak flows (the server imports them from --flows)."""

import asyncio


async def nap(seconds: float) -> dict[str, float]:
    await asyncio.sleep(seconds)
    return {"slept": seconds}


def total(values: list[int]) -> dict[str, int]:
    return {"total": sum(values)}
'''

APPROVAL_FLOW = f"""id: approval
namespace: {NAMESPACE}
tasks:
  - id: prepare
    type: return
    format: "request {{{{ execution.id }}}}"
  - id: approve
    type: io.kestra.plugin.core.flow.Pause
    onResume:
      - id: approved
        type: BOOLEAN
      - id: amount
        type: INT
      - id: note
        type: STRING
        defaults: none
  - id: record
    type: return
    format: "{{{{ outputs.approve.onResume.approved }}}} {{{{ outputs.approve.onResume.amount }}}}"
"""

STEPS_FLOW = f"""id: steps
namespace: {NAMESPACE}
tasks:
  - id: first
    type: return
    format: "{{{{ execution.id }}}}"
  - id: add
    type: python
    function: soak_tasks:total
    kwargs:
      values: [1, 2, 3, 4]
  - id: nap
    type: python
    function: soak_tasks:nap
    kwargs:
      seconds: 0.2
  - id: note
    type: log
    message: "total {{{{ outputs.add.total }}}}"
  - id: last
    type: return
    format: done
"""

LONG_FLOW = f"id: long\nnamespace: {NAMESPACE}\ntasks:\n" + "".join(
    f"  - id: nap{i}\n    type: python\n    function: soak_tasks:nap\n"
    f"    kwargs:\n      seconds: {LONG_STEP_SECONDS}\n"
    for i in range(LONG_STEPS)
)

FLOWS = {"approval": APPROVAL_FLOW, "steps": STEPS_FLOW, "long": LONG_FLOW}


# -- the plan ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """How long, how much: starts/s by flow, reads/s, followers, window and warm-up."""

    minutes: float
    window: float  # seconds per sample of the time series
    warmup: float  # seconds at the start the verdicts ignore
    starts_per_s: dict[str, float]
    reads_per_s: float
    followers: int
    connections: int  # keep-alive connections for requests (followers have their own)
    seed: int
    audit_cap: int = 2000  # executions whose audit is checked (a random sample beyond it)

    @property
    def seconds(self) -> float:
        return self.minutes * 60


def plan_for(minutes: float, *, rate: float = 1.0, seed: int | None = None) -> Plan:
    """The soak's plan: 5 s windows for short runs, 30 s for long ones; ``rate`` scales it."""
    window = 5.0 if minutes <= 5 else 30.0
    return Plan(
        minutes=minutes,
        window=window,
        warmup=max(4 * window, min(120.0, 0.1 * minutes * 60)),
        starts_per_s={"approval": 6.0 * rate, "steps": 7.0 * rate, "long": 5.5 * rate},
        reads_per_s=240.0 * rate,
        followers=20,
        connections=48,
        seed=seed if seed is not None else random.randrange(1 << 30),
    )


# -- measuring ----------------------------------------------------------------------------


@dataclass
class Tracked:
    """One execution this soak started, and what it was told about its commands."""

    id: str
    flow: str
    accepted: dict[str, tuple[str, bool | None]] = field(default_factory=dict)
    inputs: dict[str, Any] | None = None  # what its Pause task was resumed with


# -- talking to the server ----------------------------------------------------------------


class Api:
    """A pool of keep-alive raw connections; every call is counted and classified.

    A 5xx, a transport error, a timeout or any status the caller did not expect is an
    error; 409 (racing control) and an expected 422 are legitimate and counted apart.
    """

    def __init__(self, server: Server, size: int, recorder: Recorder) -> None:
        self.base, self.key, self.size, self.recorder = server.base, server.key, size, recorder
        self.pool: asyncio.Queue[tuple[RawConnection, float]] = asyncio.Queue()

    async def open(self) -> None:
        for _ in range(self.size):
            self.pool.put_nowait((await RawConnection.open(self.base, self.key), time.monotonic()))

    def close(self) -> None:
        while not self.pool.empty():
            self.pool.get_nowait()[0].close()

    async def call(
        self,
        kind: str,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        ok: Sequence[int] = (200, 201, 202),
        conflict_ok: bool = False,
        expect_422: bool = False,
    ) -> tuple[int, Any]:
        """Status and parsed JSON body; (0, None) after a transport error or timeout."""
        connection, last_used = await self.pool.get()
        data = json.dumps(body).encode() if body is not None else b""
        try:
            if time.monotonic() - last_used > IDLE_REOPEN_SECONDS:
                connection.close()
                connection = await RawConnection.open(self.base, self.key)
            started = time.perf_counter()
            status, payload = await asyncio.wait_for(
                connection.exchange(method, path, data), REQUEST_TIMEOUT
            )
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as error:
            connection.close()
            self.recorder.error(f"{kind} {method} {path}: transport error {error!r}")
            with contextlib.suppress(OSError):
                connection = await RawConnection.open(self.base, self.key)
            self.pool.put_nowait((connection, 0.0))  # 0: reopened before its next use
            return 0, None
        ms = (time.perf_counter() - started) * 1000
        self.pool.put_nowait((connection, time.monotonic()))
        self.recorder.request(kind, status, ms)
        parsed = json.loads(payload) if payload.startswith((b"{", b"[")) else None
        if status in ok:
            return status, parsed
        if status == 409 and conflict_ok:
            self.recorder.conflict(kind)
        elif status == 422 and expect_422:
            self.recorder.expected_422 += 1
        else:
            self.recorder.error(f"{kind} {method} {path}: {status} {payload[:300]!r}")
        return status, parsed


# -- the load -------------------------------------------------------------------------------


class Soak:
    """The load generator: scenario arrivals, reads, SSE followers, the sampler."""

    def __init__(self, plan: Plan, server: Server, api: Api, recorder: Recorder) -> None:
        self.plan, self.server, self.api, self.recorder = plan, server, api, recorder
        self.rng = random.Random(plan.seed)
        self.tracked: dict[str, Tracked] = {}
        self.recent: deque[str] = deque(maxlen=200)  # the latest started: what reads read
        self.to_follow: deque[str] = deque(maxlen=100)
        self.new_start = asyncio.Event()
        self.stopping = False
        self.tasks: set[asyncio.Task[None]] = set()
        self.samples: list[dict[str, Any]] = []
        self.followers: list[asyncio.Task[None]] = []

    def spawn(self, coroutine: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(self.guarded(coroutine))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def guarded(self, coroutine: Any) -> None:
        try:
            await coroutine
        except Exception:
            self.recorder.error(f"load task crashed: {traceback.format_exc(limit=6)}")

    async def nap(self, low: float, high: float) -> bool:
        """Sleep a random while; False if the load stopped meanwhile."""
        await asyncio.sleep(self.rng.uniform(low, high))
        return not self.stopping

    # control -------------------------------------------------------------------------

    async def control(
        self, tracked: Tracked, op: str, body: dict[str, Any] | None = None, kind: str | None = None
    ) -> int:
        status, reply = await self.api.call(
            kind or op,
            "POST",
            f"/api/v1/executions/{tracked.id}/{op}",
            body,
            conflict_ok=True,
        )
        if status in (200, 202) and isinstance(reply, dict):
            tracked.accepted[reply["command_id"]] = (op, reply.get("applied"))
        return status

    async def start(self, flow: str) -> Tracked | None:
        status, reply = await self.api.call(
            "start", "POST", "/api/v1/executions", {"namespace": NAMESPACE, "flow_id": flow}
        )
        if status != 201:
            return None
        tracked = Tracked(reply["id"], flow)
        self.tracked[tracked.id] = tracked
        self.recent.append(tracked.id)
        self.to_follow.append(tracked.id)
        self.new_start.set()
        return tracked

    async def until_paused(self, tracked: Tracked, timeout: float = 30.0) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, state = await self.api.call(
                "state", "GET", f"/api/v1/executions/{tracked.id}/state"
            )
            if status == 200 and state["state"] == "PAUSED":
                return dict(state)
            if status == 200 and state["state"] in TERMINAL:
                return None
            await asyncio.sleep(0.15)
        self.recorder.error(f"{tracked.flow} {tracked.id} not PAUSED {timeout:.0f} s after start")
        return None

    # scenarios -------------------------------------------------------------------------

    async def together(
        self, tracked: Tracked, *ops: tuple[str, dict[str, Any] | None]
    ) -> list[int]:
        """Send control requests on one execution at the same moment (a race: 409s are fine)."""
        return list(await asyncio.gather(*(self.control(tracked, op, body) for op, body in ops)))

    async def approval(self) -> None:
        tracked = await self.start("approval")
        if tracked is None or await self.until_paused(tracked) is None:
            return
        if not await self.nap(0.3, 2.5):
            return
        if self.rng.random() < 0.5:
            await self.control(tracked, "inject", {"message": "a reviewer looked", "role": "user"})
        if self.rng.random() < 0.1:
            await self.control(tracked, "cancel", {"reason": "request withdrawn"})
            return
        if self.rng.random() < 0.15:
            status, reply = await self.api.call(
                "bad_resume",
                "POST",
                f"/api/v1/executions/{tracked.id}/resume",
                {"inputs": {"approved": True, "amount": "a lot"}},
                ok=(),
                expect_422=True,
            )
            if status == 422 and not any(
                "amount" in map(str, item.get("loc", [])) for item in reply.get("detail", [])
            ):
                self.recorder.error(f"bad resume of {tracked.id}: 422 does not name amount")
        inputs = {
            "approved": self.rng.random() < 0.7,
            "amount": self.rng.randrange(1, 10_000),
            "note": f"note {self.rng.randrange(1000)}",
        }
        resume = ("resume", {"inputs": inputs})
        if self.rng.random() < 0.1:  # the approver and a withdrawal, at the same moment
            statuses = await self.together(tracked, resume, ("cancel", {"reason": "withdrawn"}))
        else:
            statuses = [await self.control(tracked, *resume)]
        if statuses[0] == 202:
            tracked.inputs = inputs

    async def steps(self) -> None:
        tracked = await self.start("steps")
        if tracked is not None and self.rng.random() < 0.3 and await self.nap(0.1, 1.0):
            await self.api.call("get", "GET", f"/api/v1/executions/{tracked.id}")

    async def long(self) -> None:
        tracked = await self.start("long")
        if tracked is None or not await self.nap(0.3, 0.8):
            return
        pause: tuple[str, dict[str, Any] | None] = ("pause", {"reason": "soak"})
        resume: tuple[str, dict[str, Any] | None] = ("resume", None)
        for _ in range(self.rng.randint(3, 6)):
            # A quarter of the time two operators click at once: one of the two is a 409.
            twice = 2 if self.rng.random() < 0.25 else 1
            if 202 not in await self.together(tracked, *[pause] * twice):
                return  # it finished on its own
            if not await self.nap(0.0, 0.5):
                return
            if self.rng.random() < 0.6:
                await self.control(tracked, "inject", {"message": "more context", "role": "system"})
            if self.rng.random() < 0.3:
                await self.api.call("state", "GET", f"/api/v1/executions/{tracked.id}/state")
            await self.together(tracked, *[resume] * (2 if self.rng.random() < 0.25 else 1))
            if not await self.nap(0.2, 0.6):
                return
        ending = self.rng.random()
        cancel = ("cancel", {"reason": "no longer needed"})
        terminate = ("terminate", {"reason": "soak terminates some"})
        if ending < 0.25:
            await self.control(tracked, *cancel)
        elif ending < 0.4:
            await self.control(tracked, *terminate)
        elif ending < 0.5:
            await self.together(tracked, cancel, terminate)

    async def read(self) -> None:
        if not self.recent:
            return
        execution_id = self.rng.choice(self.recent)
        choice = self.rng.random()
        if choice < 0.4:
            await self.api.call("state", "GET", f"/api/v1/executions/{execution_id}/state")
        elif choice < 0.7:
            await self.api.call("get", "GET", f"/api/v1/executions/{execution_id}")
        elif choice < 0.9:
            await self.api.call("list", "GET", f"/api/v1/executions?namespace={NAMESPACE}&limit=20")
        else:
            await self.api.call("audit", "GET", f"/api/v1/executions/{execution_id}/audit")

    async def arrivals(self, rate: float, make: Any) -> None:
        """Poisson arrivals at ``rate`` per second, each running ``make()`` on its own."""
        loop = asyncio.get_running_loop()
        rng = random.Random(self.rng.random())
        next_at = loop.time()
        while not self.stopping:
            next_at += rng.expovariate(rate)
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            if not self.stopping:
                self.spawn(make())

    # SSE followers ---------------------------------------------------------------------

    async def follower(self) -> None:
        while not self.stopping:
            if not self.to_follow:
                self.new_start.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.new_start.wait(), 0.5)
                continue
            await self.follow(self.to_follow.pop())  # the newest: most likely still running

    async def follow(self, execution_id: str) -> None:
        """Read one execution's SSE stream to its end; it must be gapless from seq 1 and
        end with a terminal event."""
        host, _, port = self.server.base.removeprefix("http://").partition(":")
        what = f"SSE of {execution_id}"
        try:
            reader, writer = await asyncio.open_connection(host, int(port))
        except OSError as error:
            self.recorder.error(f"{what}: cannot connect: {error!r}")
            return
        try:
            writer.write(
                (
                    f"GET /api/v1/executions/{execution_id}/events HTTP/1.1\r\nHost: {host}\r\n"
                    f"X-API-Key: {self.server.key}\r\nAccept: text/event-stream\r\n\r\n"
                ).encode()
            )
            status_line = await reader.readline()
            headers = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            if not status_line.startswith(b"HTTP/1.1 200"):
                self.recorder.error(f"{what}: {status_line!r}")
                return
            if headers.get("transfer-encoding") != "chunked":
                self.recorder.error(f"{what}: not chunked ({headers})")
                return
            expected, last_type, buffer = 1, None, b""
            while True:
                size_line = await reader.readline()
                if not size_line:
                    self.recorder.error(f"{what}: connection closed before the stream ended")
                    return
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    break
                buffer += (await reader.readexactly(size + 2))[:-2]
                *frames, buffer = buffer.split(b"\n\n")
                events = 0
                for frame in frames:
                    seq, kind = None, None
                    for line in frame.split(b"\n"):
                        if line.startswith(b"id: "):
                            seq = int(line[4:])
                        elif line.startswith(b"event: "):
                            kind = line[7:].decode()
                    if seq is None:
                        continue  # a keep-alive comment
                    if seq != expected:
                        self.recorder.error(f"{what}: event {seq} where {expected} was due")
                    expected, last_type, events = seq + 1, kind, events + 1
                self.recorder.sse(events)
            if last_type not in TERMINAL_EVENT_TYPES:
                self.recorder.error(f"{what}: its last event is {last_type!r}, not terminal")
            self.recorder.follow_ended()
        except (OSError, asyncio.IncompleteReadError, ValueError) as error:
            self.recorder.error(f"{what}: {error!r}")
        finally:
            writer.close()

    # sampling --------------------------------------------------------------------------

    async def sampler(self, started: float) -> None:
        pid = self.server.process.pid
        loop = asyncio.get_running_loop()
        probe = SpeedProbe()
        await probe.start()
        probe_pid = probe.pid
        assert probe_pid is not None

        def now() -> tuple[float, ...]:
            return (
                cpu_seconds(pid),
                load_cpu_seconds(),
                cpu_seconds(probe_pid),
                machine_cpu_seconds(),
                waiting_seconds(pid),
                waiting_seconds(os.getpid()),
                loop.time(),
            )

        last = now()
        n = 0
        try:
            while not self.stopping:
                n += 1
                await asyncio.sleep(max(0.0, started + n * self.plan.window - loop.time()))
                sample = now()
                (
                    server_cpu,
                    load_cpu,
                    probe_cpu,
                    machine_cpu,
                    server_waiting,
                    load_waiting,
                    elapsed,
                ) = (b - a for a, b in zip(last, sample, strict=True))
                others_cpu = machine_cpu - server_cpu - load_cpu - probe_cpu
                self.samples.append(
                    summarize_window(
                        self.recorder.take_window(),
                        t=sample[-1] - started,
                        seconds=elapsed,
                        rss=rss_mib(pid),
                        server_cpu=server_cpu / elapsed,
                        load_cpu=load_cpu / elapsed,
                        others_cpu=max(0.0, others_cpu) / elapsed,
                        server_waiting=server_waiting / elapsed,
                        load_waiting=load_waiting / elapsed,
                        probe_us=probe.take_window(),
                        executions=await self.terminal_count(),
                    )
                )
                last = sample
                window = self.samples[-1]
                progress(
                    f"t={window['t']:.0f}s {window['requests_per_s']['total']:.0f} req/s, "
                    f"control p50/p99 {window['control_ms']['p50']}/"
                    f"{window['control_ms']['p99']} ms, RSS {window['rss_mib']} MiB, "
                    f"CPU server {window['server_cpu_pct']}% load {window['load_cpu_pct']}% "
                    f"others {window['others_cpu_pct']}%, waiting for a core: server "
                    f"{window['server_waiting_pct']}% load {window['load_waiting_pct']}%, "
                    f"probe {window['probe_us']} µs"
                )
        finally:
            await probe.stop()

    async def terminal_count(self) -> dict[str, int]:
        """Executions by state, from the server's /metrics."""
        status, _ = 0, None
        connection = await RawConnection.open(self.server.base, self.server.key)
        try:
            status, text = await connection.exchange("GET", "/metrics")
        finally:
            connection.close()
        counts: dict[str, int] = {}
        if status != 200:
            self.recorder.error(f"/metrics: {status}")
            return counts
        for line in text.decode().splitlines():
            if line.startswith("pausepoint_executions{"):
                state = line.split('"')[1]
                counts[state] = int(float(line.rsplit(" ", 1)[1]))
        return counts

    async def run_load(self) -> float:
        """Run the load for the plan's duration; returns when it started (loop time)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        scenarios = {"approval": self.approval, "steps": self.steps, "long": self.long}
        runners = [
            asyncio.create_task(self.arrivals(rate, scenarios[flow]))
            for flow, rate in self.plan.starts_per_s.items()
        ]
        runners.append(asyncio.create_task(self.arrivals(self.plan.reads_per_s, self.read)))
        followers = [asyncio.create_task(self.follower()) for _ in range(self.plan.followers)]
        sampler = asyncio.create_task(self.sampler(started))
        await asyncio.sleep(self.plan.seconds)
        self.stopping = True
        self.recorder.recording = False
        await asyncio.gather(*runners, sampler)
        # Scenarios notice ``stopping`` at their next step; followers end with their streams.
        if self.tasks:
            _, late = await asyncio.wait(self.tasks, timeout=60)
            if late:
                self.recorder.error(f"{len(late)} scenarios still running 60 s after the load")
        self.followers = followers
        return started


# -- the whole run -------------------------------------------------------------------------------


def write_flows(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "soak_tasks.py").write_text(TASKS_MODULE)
    for name, source in FLOWS.items():
        (directory / f"{name}.yaml").write_text(source)


@contextlib.contextmanager
def work_directory(workdir: Path | None) -> Iterator[Path]:
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        yield workdir
        return
    with tempfile.TemporaryDirectory(prefix="pausepoint-soak-") as tmp:
        yield Path(tmp)


async def run(plan: Plan, out: Path, workdir: Path | None = None) -> dict[str, Any]:
    """Run the soak, write soak.json and the charts into ``out``, return the result.

    ``result["passed"]`` is true when there was no error, nothing was lost and both
    verdicts passed; ``result["errors"]`` lists what went wrong.
    """
    recorder = Recorder()
    about = machine()  # the commit the server runs, as the load starts
    with work_directory(workdir) as work:
        write_flows(work / "flows")
        with start_server(work, flows=work / "flows", db_name="soak.db") as server:
            api = Api(server, plan.connections, recorder)
            await api.open()
            soak = Soak(plan, server, api, recorder)
            try:
                progress(f"load for {plan.minutes:g} min against {server.base} (seed {plan.seed})")
                await soak.run_load()
                progress(f"draining {sum(1 for _ in soak.tracked)} executions")
                await drain(soak, timeout=120.0)
                ended = await asyncio.wait(soak.followers, timeout=30)
                for follower in ended[1]:
                    follower.cancel()
                if ended[1]:
                    recorder.error(f"{len(ended[1])} SSE streams did not end after the drain")
                progress("checking: final states, audits, typed inputs")
                checks = await verify(soak)
                checks["server_control_errors"] = await server_side_errors(server)
                if checks["server_control_errors"]:
                    recorder.error(f"/metrics counts {checks['server_control_errors']} 5xx")
                rss_end = rss_mib(server.process.pid)
            finally:
                api.close()
        log = server.log_path.read_text(errors="replace")
        # SIGTERM stops the server gracefully: anything but 0 means it did not.
        checks["server_exit_code"] = server.process.returncode
        if server.process.returncode != 0:
            recorder.error(f"server exited with {server.process.returncode}")
        if "Traceback" in log:
            at = log.index("Traceback")
            recorder.error(f"server logged a traceback:\n{log[at : at + 2000]}")
    series = soak.samples
    verdicts = judge(series, run_seconds=plan.seconds, warmup=plan.warmup)
    totals = recorder.totals(series, minutes=plan.minutes, warmup=plan.warmup)
    totals["rss_mib_end"] = round(rss_end, 2)
    result: dict[str, Any] = {
        "settings": {**asdict(plan), "load": "open-loop Poisson arrivals, one process"},
        "machine": about,
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "totals": totals,
        "checks": checks,
        "verdicts": {name: asdict(verdict) for name, verdict in verdicts.items()},
        "errors": recorder.errors[:100],
        "timeseries": series,
    }
    result["passed"] = not recorder.errors and all(v.ok for v in verdicts.values())
    result["inconclusive"] = [name for name, v in verdicts.items() if not v.conclusive]
    result["failed"] = bool(recorder.errors) or any(
        v.conclusive and not v.ok for v in verdicts.values()
    )
    (out / "soak.json").write_text(json.dumps(result, indent=1) + "\n")
    result["charts_missing"] = draw(result, out)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=2.0, help="load duration (default 2)")
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs" / "reliability")
    parser.add_argument("--rate", type=float, default=1.0, help="scale every rate (default 1)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--workdir", type=Path, default=None, help="keep the database here")
    args = parser.parse_args(argv)
    plan = plan_for(args.minutes, rate=args.rate, seed=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    result = asyncio.run(run(plan, args.out, args.workdir))
    for name, verdict in result["verdicts"].items():
        outcome = "PASS" if verdict["ok"] else "FAIL" if verdict["conclusive"] else "NOT JUDGED"
        progress(f"{name}: {outcome} - {verdict['detail']}")
    progress(f"totals: {json.dumps(result['totals'])}")
    progress(f"checks: {json.dumps(result['checks'])}")
    if result["charts_missing"]:
        progress(f"no charts: {result['charts_missing']}")
    for error in result["errors"][:20]:
        progress(f"error: {error}")
    if result["passed"]:
        progress(f"PASSED; results in {args.out}")
        return 0
    if result["failed"]:
        progress(f"FAILED; results in {args.out}")
        return 1
    progress(f"nothing failed, but not judged: {result['inconclusive']}; results in {args.out}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
