"""The benchmark rules, the side-by-side part of bench/README.md, and bench/peers.png."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import HUMAN_DELAY_SECONDS, HUMAN_DELAY_SEED

CHART = "peers.png"
# The targets pausepoint reports against (issues 7 and 19).
A_STEPS_PER_S = 5000
A_TIMES_LANGGRAPH = 5
B_P50_MS = 1.0
B_P99_MS = 3.0
C_PER_S = 2000
D_WAITING = 10000
D_MEGABYTES = 120  # MB, 10**6 bytes, of the whole process
D_RESUME_ALL_S = 3.0
TEMPORAL_RATIO = 1.3


def _label(peer: dict[str, Any]) -> str:
    return f"{peer.get('system', peer.get('key', '?'))} ({peer.get('variant', '')})"


def _value(figures: dict[str, Any] | None, workload: str, field: str) -> float | None:
    value = ((figures or {}).get(workload) or {}).get(field)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _figure(peer: dict[str, Any], workload: str, *fields: str, unit: str = "") -> str:
    figures = peer.get(workload)
    if not isinstance(figures, dict):
        return "-"
    if "error" in figures:
        return f"error: {figures['error']}"
    values = [figures.get(field) for field in fields]
    if any(value is None for value in values):
        return "-"
    return " / ".join(f"{value:g}" for value in values) + unit


def _sizes(peers: dict[str, dict[str, Any]]) -> str:
    sizes = next((p["sizes"] for p in peers.values() if "sizes" in p), None)
    if sizes is None:
        return ""
    quick = any(p.get("quick") for p in peers.values())
    runs = f"median of {sizes['runs']} runs" if sizes["runs"] > 1 else "1 run"
    if quick:
        runs += ", quick mode"
    return (
        f"A {sizes['steps']} steps, B {sizes['resumes']} resumes, C {sizes['workflows']} "
        f"executions, D {sizes['waiting']} waiting; {runs}"
    )


def remeasured(results: dict[str, Any], section: str) -> list[str]:
    """A line saying when a section was measured again on its own (``run.py --*-only``)."""
    at = results.get(f"{section}_measured_at")
    return [f"Measured again on its own, {at} (`bench/run.py --{section}-only`).", ""] if at else []


def rules_section() -> list[str]:
    """What every figure on the page obeys (issue 19), and how earlier figures were taken."""
    low, high = (round(bound * 1000) for bound in HUMAN_DELAY_SECONDS)
    return [
        "## Rules",
        "",
        "Every figure on this page is taken under these rules (issue 19):",
        "",
        "- **pausepoint is measured only through its public API**: `Engine`",
        "  (`start_execution`, `wait`, `resume`, `pause`, `cancel`, `state`, `execution`,",
        "  `follow`, `list_executions`, `runs_here`), and HTTP for the server's figures.",
        "  Its end, and its pauses, are awaited with",
        '  `Engine.wait` (with `until=` a view in state `"PAUSED"`). No benchmark reads a',
        "  private attribute or replaces a method of pausepoint.",
        "- **Each peer is awaited its own documented way**: LangGraph's `ainvoke`, the",
        "  result of a DBOS workflow handle (`get_result`), the result of a Temporal",
        "  workflow handle (`result`; `execute_workflow` for A). The table of what each",
        "  system does says how each one learns that a workflow waits.",
        "- **Resumes in B are sent after a human delay**: once the execution is known to",
        f"  wait, the harness sleeps {low}-{high:,} ms (uniformly at random) before it resumes",
        "  it, for every system. The delays are drawn from",
        f"  `random.Random({HUMAN_DELAY_SEED})`; every system and every run replays the same",
        "  sequence from its start (`human_delays` in `bench/peers/common.py`). The clock",
        "  starts just before the resume call and stops when the next step's own code",
        "  starts (a no-op user function that notes the time).",
        "- **Medians of runs**: each figure in the side-by-side table and the chart, D at",
        "  its target size and pausepoint on Temporal is the median over 3 runs (1 in",
        "  quick mode; B's p50 and p99 are the medians of each run's p50 and p99).",
        "- **Defaults**: every system runs with its default settings, except where the",
        "  table of what each system does says otherwise. For pausepoint that is the",
        "  database, SQLite's `synchronous` (the FULL variant) and where tasks import from.",
        "- B takes 100 resumes per system, not 200: with an average delay of 0.55 s, 200",
        "  would make a full run (every system three times) last well over an hour. The",
        "  p99 of 100 resumes is the second largest.",
        "",
        "### How earlier figures were taken",
        "",
        "The figures this page showed before these rules (up to commit 2849a77) were",
        "taken in ways that favoured pausepoint, and are not comparable with these:",
        "",
        "- pausepoint's harness never asked pausepoint, as a user would, whether an",
        "  execution had paused or ended. It listened inside the engine instead: first on",
        "  a queue from `engine.runtime.subscribe`, then through sinks added with",
        "  `engine.runtime.add_sink`, then (for C and D) by replacing the runtime's",
        "  `published` method with a wrapper, and last through a subscription on the",
        "  engine's in-process event feed (`engine.feed`). Each heard of an event the",
        "  moment it was published in memory; `Engine.wait` reads the execution back from",
        "  the store, which costs more.",
        "- In B, pausepoint was resumed the instant its `workflow.paused` event arrived, and",
        "  the peers almost as soon: Temporal 20 ms after a query said the workflow waited,",
        "  DBOS 20 ms after the event it sets just before `recv`, LangGraph as soon as",
        "  `ainvoke` returned at the interrupt. People answer a pause much later.",
        "- pausepoint on Temporal was resumed 50 ms after PAUSED (plain Temporal 50 ms after",
        "  its workflow started, with no check that it waited), polled every 10 ms instead",
        "  of the default 200 ms, kept its store in SQLite, and ran with one worker only.",
        "- Section D at 10,000 waiting ran in the benchmark process after all the other",
        "  workloads (their freed memory was reused, so it showed as nothing added);",
        "  `Engine.wait` was compared with the event feed; the trees of subflows ran with",
        "  `poll_interval=0.05` instead of the default 0.2 s.",
        "- The side-by-side figures were one run each (`bench/run.py --peer-runs 1`), and B",
        "  had 200 resumes.",
        "",
    ]


@dataclass(frozen=True)
class Row:
    """One workload's line in the side-by-side table."""

    name: str
    workload: str
    field: str
    higher_is_better: bool
    target: str = "-"
    #: whether pausepoint's figure meets the target, given every system's figures
    met: Callable[[float, dict[str, dict[str, Any]]], bool] | None = None


def _a_met(ours: float, peers: dict[str, dict[str, Any]]) -> bool:
    langgraph = _value(peers.get("langgraph-sqlite"), "durable_steps", "steps_per_s")
    return ours >= A_STEPS_PER_S and langgraph is not None and ours >= A_TIMES_LANGGRAPH * langgraph


ROWS = (
    Row(
        "A. durable steps/s",
        "durable_steps",
        "steps_per_s",
        True,
        f"≥ {A_STEPS_PER_S:,} and ≥ {A_TIMES_LANGGRAPH}x LangGraph",
        _a_met,
    ),
    Row(
        "B. resume → next step p50 (ms)",
        "resume_latency",
        "p50_ms",
        False,
        f"≤ {B_P50_MS:g}",
        lambda ours, _: ours <= B_P50_MS,
    ),
    Row(
        "B. resume → next step p99 (ms)",
        "resume_latency",
        "p99_ms",
        False,
        f"≤ {B_P99_MS:g}",
        lambda ours, _: ours <= B_P99_MS,
    ),
    Row(
        "C. executions/s",
        "throughput",
        "per_s",
        True,
        f"≥ {C_PER_S:,}",
        lambda ours, _: ours >= C_PER_S,
    ),
    Row("D. resident memory, all processes (MiB)", "many_paused", "rss_total_mib", False),
    Row("D. memory the waiting added (MiB)", "many_paused", "rss_added_mib", False),
    Row("D. resume all → all completed (s)", "many_paused", "resume_all_s", False),
)


def _verdict(met: bool | None) -> str:
    return "-" if met is None else ("**yes**" if met else "**no**")


def _ratio(ours: float | None, best: float | None, higher_is_better: bool) -> str:
    if not ours or not best:
        return "-"
    return f"{(ours / best if higher_is_better else best / ours):.2f}x"


def side_by_side_table(peers: dict[str, dict[str, Any]], judged: bool) -> list[str]:
    """Workloads down, systems across, then pausepoint against the best peer and the
    target. pausepoint is the default variant (SQLite NORMAL)."""
    systems = list(peers.values())
    ours = peers.get("pausepoint", {})
    others = [p for p in systems if p.get("system") != "pausepoint" and "error" not in p]
    header = ["workload", *(_label(p) for p in systems)]
    header += ["pausepoint ÷ best peer (above 1: pausepoint better)", "target", "met"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in ROWS:
        cells = [row.name]
        for peer in systems:
            cells.append(
                f"not run: {peer['error']}"
                if "error" in peer
                else _figure(peer, row.workload, row.field)
            )
        mine = _value(ours, row.workload, row.field)
        theirs = [
            (value, _label(p))
            for p in others
            if (value := _value(p, row.workload, row.field)) is not None
        ]
        if theirs and mine is not None:
            best, who = (max if row.higher_is_better else min)(theirs)
            cells.append(f"{_ratio(mine, best, row.higher_is_better)} ({who})")
        else:
            cells.append("-")
        met = None
        if row.met is not None and mine is not None and judged:
            met = row.met(mine, peers)
        cells += [row.target, _verdict(met) if judged or row.met is None else "not judged"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def waiting_target(memory: dict[str, Any] | None) -> list[str]:
    """D at its target size (10,000 waiting) in a fresh process: memory and resume-all."""
    many = (memory or {}).get("many_paused")
    if not isinstance(many, dict) or "rss_total_mib" not in many:
        why = (memory or {}).get("error") or (many or {}).get("error") or "not measured"
        return [
            f"### D at {D_WAITING:,} waiting",
            "",
            f"Not measured under these rules: {why}.",
            "",
        ]
    waiting = many["waiting"]
    lines = [f"### D at {waiting:,} waiting (the target's size: {D_WAITING:,})", ""]
    judged = waiting >= D_WAITING
    limit_mib = D_MEGABYTES * 10**6 / 2**20
    rss = float(many["rss_total_mib"])
    resume_all = float(many["resume_all_s"])
    return [
        *lines,
        f"pausepoint alone in a fresh process (`python -m peers.pausepoint --only D "
        f"--waiting {waiting}`),",
        f"{waiting:,} executions started a hundred at a time, each awaited with `Engine.wait`",
        "until PAUSED; then the resident memory of the whole process; then every one",
        "resumed (`Engine.resume`, all at once) and awaited with `Engine.wait` until",
        f"COMPLETED ({_runs((memory or {}).get('sizes', {}).get('runs', 1))}).",
        "",
        "| measure | pausepoint | target | met |",
        "|---|---|---|---|",
        f"| resident memory of the whole process, {waiting:,} waiting (MiB) | {rss:g} "
        f"| ≤ {D_MEGABYTES} MB ({limit_mib:.1f} MiB) "
        f"| {_verdict(rss <= limit_mib) if judged else 'not judged'} |",
        f"| memory the waiting executions added (MiB) | {many.get('rss_added_mib', '-')} | - | - |",
        f"| executions left running in memory while waiting | "
        f"{many.get('actors_in_memory', '-')} | - | - |",
        f"| resume all → all completed (s) | {resume_all:g} | ≤ {D_RESUME_ALL_S:g} "
        f"| {_verdict(resume_all <= D_RESUME_ALL_S) if judged else 'not judged'} |",
        "",
    ]


def _runs(runs: int) -> str:
    return f"median of {runs} runs" if runs > 1 else "1 run"


def peers_section(results: dict[str, Any]) -> list[str]:
    """Markdown lines: the side-by-side table with targets, D at its target size, memory
    detail, what each system does."""
    peers: dict[str, dict[str, Any]] = results.get("peers") or {}
    if not peers:
        return ["## Side by side with the peers", "", "Not run.", ""]
    # Harnesses written under the rules say how each system is awaited.
    earlier = not any("awaited" in p for p in peers.values())
    judged = not earlier and not any(p.get("quick") for p in peers.values())
    lines = [
        "## Side by side with the peers",
        "",
        *remeasured(results, "peers"),
        *(
            ["**Measured under the earlier rules**: rerun `bench/run.py --peers-only`.", ""]
            if earlier
            else []
        ),
        "The same four workloads for every system, on this machine, each system in its",
        "own process, every step durably recorded before the next:",
        "",
        "- **A. durable steps**: one execution of N sequential no-op steps → steps/s;",
        "- **B. resume latency**: an execution waits on a pause; a human delay later, the",
        "  resume call → the next step starting, p50 / p99 (ms);",
        "- **C. throughput**: N executions of 3 steps started at once, each awaited →",
        "  completed/s;",
        "- **D. many paused**: N executions waiting on a pause → resident memory of every",
        "  process involved (worker, server), then resume all → seconds until all",
        "  complete.",
        "",
        f"Sizes: {_sizes(peers)}. pausepoint runs with SQLite `synchronous=NORMAL` (its",
        "default: survives a process crash) and `FULL` (survives power loss, as the",
        "peers' SQLite defaults do); its targets are judged on NORMAL"
        + (
            "."
            if judged or earlier
            else ", and not in quick mode (the sizes are not the targets')."
        ),
        "",
        (
            f"![A, B, C and D per system]({CHART})"
            if not results.get("peers_chart_missing")
            else f"(No chart: {results['peers_chart_missing']}.)"
        ),
        "",
        *side_by_side_table(peers, judged),
        "",
        *waiting_target(results.get("paused_memory")),
        "D per process (RSS after the executions are waiting, and what they added; for",
        "multi-process servers PSS too, which counts shared memory such as PostgreSQL's",
        "shared buffers once instead of once per process):",
        "",
        "| system | process | resident (MiB) | added (MiB) | PSS (MiB) | PSS added (MiB) |",
        "|---|---|---|---|---|---|",
    ]
    for peer in peers.values():
        many = peer.get("many_paused")
        if not isinstance(many, dict) or "processes" not in many:
            continue
        for process, memory in many["processes"].items():
            lines.append(
                f"| {_label(peer)} | {process} | {memory.get('rss_mib', '-')} "
                f"| {memory.get('added_mib', '-')} | {memory.get('pss_mib', '-')} "
                f"| {memory.get('pss_added_mib', '-')} |"
            )
    lines += [
        "",
        "What each system does (a step, a pause, how it is awaited), its version and",
        "settings:",
        "",
        "| system | version | step | pause / resume | awaited with | settings | wall time (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for peer in peers.values():
        lines.append(
            f"| {_label(peer)} | {peer.get('version', '-')} | {peer.get('step', '-')} "
            f"| {peer.get('pause', '-')} | {peer.get('awaited', '-')} "
            f"| {peer.get('settings', '-')} | {peer.get('wall_seconds', '-')} |"
        )
    lines += [
        "",
        "Reading the figures:",
        "",
        "- Temporal's local activities skip the task queue, but their results reach the",
        "  history only when the workflow task completes: consecutive local activities",
        "  can share one write, so a crash may re-run the last few. Activities are each",
        "  recorded.",
        "- DBOS on SQLite has no push notification: a waiting `recv` learns of a message",
        "  when its listener polls (every second by default), which sets its resume",
        "  latency. On PostgreSQL it uses LISTEN/NOTIFY.",
        "- LangGraph has no worker or server: a graph runs inside the caller's `ainvoke`,",
        "  and a waiting graph is only rows in its checkpointer.",
        "- The resident memory of a multi-process server (PostgreSQL) sums each process's",
        "  RSS, counting shared buffers once per process; PSS counts them once.",
        "- A resume is sent a human delay after the execution is known to wait",
        "  (pausepoint: `Engine.wait` until PAUSED; Temporal: a query; DBOS: an event set",
        "  just before `recv`; LangGraph: `ainvoke` has returned at the interrupt).",
        "",
    ]
    return lines


def temporal_runtime_section(results: dict[str, Any]) -> list[str]:
    """Plain temporalio vs pausepoint on temporal+postgres, 1 and 2 workers (target 1.3x)."""
    figures = results.get("temporal_runtime")
    lines = [
        "## pausepoint on Temporal vs plain Temporal",
        "",
        *remeasured(results, "temporal"),
        "Both on one Temporal dev server (its SQLite file), in the same run, under the rules",
        "above: plain Temporal is hand-written temporalio (`bench/temporal_bench.py`: one",
        "activity per step; a signal, then the next activity), awaited with its handle's",
        "`result`; pausepoint on Temporal runs a flow of `python` no-op tasks (each an",
        "activity) and Pause tasks, through an API engine (as `pausepoint server --runtime",
        "temporal` runs it) and workers (as `pausepoint worker` runs them) in the benchmark",
        "process, its store in PostgreSQL (`bench/pausepoint_temporal.py`), awaited with",
        "`Engine.wait`. Both run with one worker, then with two workers on the task queue",
        "(in one process: the machine has two cores). Resumes come after the same human",
        "delays, in five alternating rounds on the same server (its latency swings from",
        "run to run; alternating compares the two sides under the same swings). Target:",
        f"pausepoint within {TEMPORAL_RATIO}x of plain Temporal for A and B.",
        "",
    ]
    if not isinstance(figures, dict):
        return [*lines, "Not measured in this run.", ""]
    if "error" in figures:
        return [*lines, f"Not run: {figures['error']}", ""]
    if "by_workers" not in figures:
        return [*lines, "Measured under the earlier rules only; rerun `--temporal-only`.", ""]
    lines += [
        f"{_runs(figures['runs']).capitalize()} per worker count; "
        f"pausepoint's store: {figures['store']}.",
        "",
        "| workers | system | A steps/s | B resume p50 / p99 (ms) |",
        "|---|---|---|---|",
    ]
    by_workers: dict[str, dict[str, Any]] = figures["by_workers"]
    for count, run in by_workers.items():
        plain = run.get("plain") or {}
        lines += [
            f"| {count} | plain Temporal (activities) "
            f"| {_figure(plain, 'durable_steps', 'steps_per_s')} "
            f"| {_figure(plain, 'resume_latency', 'p50_ms', 'p99_ms')} |",
            f"| {count} | pausepoint on temporal+postgres "
            f"| {_figure(run, 'durable_steps', 'steps_per_s')} "
            f"| {_figure(run, 'resume_latency', 'p50_ms', 'p99_ms')} |",
        ]
    judged = not figures.get("quick", results.get("quick"))
    lines += [
        "",
        f"pausepoint against plain Temporal (target: at most {TEMPORAL_RATIO}x):",
        "",
        "| workers | measure | pausepoint ÷ plain Temporal | met |",
        "|---|---|---|---|",
    ]
    for count, run in by_workers.items():
        plain = run.get("plain") or {}
        measures = [
            # time per step: plain steps/s over ours
            ("A time per step", _value(plain, "durable_steps", "steps_per_s"),
             _value(run, "durable_steps", "steps_per_s")),
            ("B p50", _value(run, "resume_latency", "p50_ms"),
             _value(plain, "resume_latency", "p50_ms")),
            ("B p99", _value(run, "resume_latency", "p99_ms"),
             _value(plain, "resume_latency", "p99_ms")),
        ]  # fmt: skip
        for name, numerator, denominator in measures:
            if not numerator or not denominator:
                lines.append(f"| {count} | {name} | - | - |")
                continue
            ratio = numerator / denominator
            verdict = _verdict(ratio <= TEMPORAL_RATIO) if judged else "not judged"
            lines.append(f"| {count} | {name} | {ratio:.2f}x | {verdict} |")
    return [*lines, ""]


def draw_chart(results: dict[str, Any], path: Path) -> str | None:
    """Bar charts of A, B, C and D per system (log scale), with pausepoint's targets.
    Returns why not, if not drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter, NullFormatter
    except ImportError as error:
        return f"matplotlib not installed: {error}"
    peers = [p for p in (results.get("peers") or {}).values() if "error" not in p]
    if not peers:
        return "no peer results"
    panels: list[tuple[str, str, str, float | None]] = [
        ("A. durable steps/s (higher is better)", "durable_steps", "steps_per_s", A_STEPS_PER_S),
        ("B. resume p50, ms (lower is better)", "resume_latency", "p50_ms", B_P50_MS),
        ("C. 3-step executions/s (higher is better)", "throughput", "per_s", C_PER_S),
        ("D. resume all waiting → done, s (lower is better)", "many_paused", "resume_all_s", None),
    ]
    labels = [f"{p.get('system')}\n{p.get('variant')}" for p in peers]
    colours = ["#d62728" if p.get("system") == "pausepoint" else "#7f7f7f" for p in peers]
    figure, axes = plt.subplots(1, len(panels), figsize=(19, 5.4))
    for axis, (title, workload, field, target) in zip(axes, panels, strict=True):
        values = [_value(p, workload, field) or 0.0 for p in peers]
        bars = axis.bar(range(len(peers)), values, color=colours)
        axis.set_yscale("log")
        axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axis.yaxis.set_minor_formatter(NullFormatter())
        axis.set_title(title, fontsize=10)
        axis.set_xticks(range(len(peers)), labels, rotation=60, ha="right", fontsize=8)
        if target is not None:
            axis.axhline(target, color="#d62728", linestyle="--", linewidth=0.8)
            axis.annotate(
                f"target {target:g}",
                (len(peers) - 0.5, target),
                ha="right",
                va="bottom",
                fontsize=7,
                color="#d62728",
            )
        for bar, value in zip(bars, values, strict=True):
            if value > 0:
                axis.annotate(
                    f"{value:,.0f}" if value >= 100 else f"{value:.3g}",
                    (bar.get_x() + bar.get_width() / 2, value),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
    sizes = _sizes(results.get("peers") or {})
    low, high = (round(bound * 1000) for bound in HUMAN_DELAY_SECONDS)
    figure.suptitle(
        f"pausepoint and its peers, same machine ({sizes}); public APIs only, "
        f"each resume {low}-{high:,} ms after the pause",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return None
