"""The peers' part of bench/README.md, and the chart bench/peers.png."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CHART = "peers.png"
# Where the pausepoint-on-Temporal figures go (A and B, same shape as a peer's) when
# the Temporal runtime is benchmarked; until then its row says so.
TEMPORAL_RUNTIME_KEY = "pausepoint-temporal"


def _label(peer: dict[str, Any]) -> str:
    return f"{peer.get('system', peer.get('key', '?'))} ({peer.get('variant', '')})"


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


def peers_section(results: dict[str, Any]) -> list[str]:
    """Markdown lines: the side-by-side table, memory detail, what each step is."""
    peers: dict[str, dict[str, Any]] = results.get("peers") or {}
    if not peers:
        return ["## Side by side with the peers", "", "Not run.", ""]
    lines = [
        "## Side by side with the peers",
        "",
        *remeasured(results, "peers"),
        "The same four workloads for every system, in one run on this machine, each",
        "system in its own process, every step durably recorded before the next:",
        "",
        "- **A. durable steps**: one execution of N sequential no-op steps → steps/s;",
        "- **B. resume latency**: an execution waits on a pause; resume call → next step",
        "  starting, p50 / p99 (ms);",
        "- **C. throughput**: N executions of 3 steps started at once → completed/s;",
        "- **D. many paused**: N executions waiting on a pause → resident memory added in",
        "  every process involved (worker, server), then resume all → seconds until all",
        "  complete.",
        "",
        f"Sizes: {_sizes(peers)}. pausepoint runs here at the peers' sizes, through the",
        "same harness (`bench/peers/`), with SQLite `synchronous=NORMAL` (its default:",
        "survives a process crash) and `FULL` (survives power loss, as the peers' SQLite",
        "defaults do); its figures at the issue's full sizes are in the sections above.",
        *(
            [f"Peers re-measured {results['peers_measured_at']} (`--peers-only`)."]
            if results.get("peers_measured_at")
            else []
        ),
        "",
        (
            f"![A, B and C per system]({CHART})"
            if not results.get("peers_chart_missing")
            else f"(No chart: {results['peers_chart_missing']}.)"
        ),
        "",
        "| system | A steps/s | B resume p50 / p99 (ms) | C executions/s "
        "| D memory added / resident, all processes (MiB) | D resume all (s) |",
        "|---|---|---|---|---|---|",
    ]
    for peer in peers.values():
        if peer.get("key") == TEMPORAL_RUNTIME_KEY:
            continue
        if "error" in peer:
            lines.append(f"| {_label(peer)} | not run: {peer['error']} | | | | |")
            continue
        lines.append(
            f"| {_label(peer)} | {_figure(peer, 'durable_steps', 'steps_per_s')} "
            f"| {_figure(peer, 'resume_latency', 'p50_ms', 'p99_ms')} "
            f"| {_figure(peer, 'throughput', 'per_s')} "
            f"| {_figure(peer, 'many_paused', 'rss_added_mib', 'rss_total_mib')} "
            f"| {_figure(peer, 'many_paused', 'resume_all_s')} |"
        )
    lines += ["", *_margins(peers)]
    lines += [
        "",
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
        "What each system does (a step, a pause), its version and settings:",
        "",
        "| system | version | step | pause / resume | settings | wall time (s) |",
        "|---|---|---|---|---|---|",
    ]
    for peer in peers.values():
        lines.append(
            f"| {_label(peer)} | {peer.get('version', '-')} | {peer.get('step', '-')} "
            f"| {peer.get('pause', '-')} | {peer.get('settings', '-')} "
            f"| {peer.get('wall_seconds', '-')} |"
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
        "- Each figure is the median of that figure over the runs (B: of each run's",
        "  p50 and p99).",
        "- The resident memory of a multi-process server (PostgreSQL) sums each process's",
        "  RSS, counting shared buffers once per process; PSS counts them once.",
        "- Every resume is sent only once the execution is known to be waiting (pausepoint:",
        "  its `workflow.paused` event; Temporal: a query, plus 20 ms; DBOS: an event set before",
        "  `recv`, plus 20 ms; LangGraph: `ainvoke` has returned at the interrupt).",
        "",
        *temporal_runtime_section(results),
        "",
    ]
    return lines


def _margins(peers: dict[str, dict[str, Any]]) -> list[str]:
    """How pausepoint (default settings) compares with the best peer on each workload."""
    ours = peers.get("pausepoint", {})
    others = [p for p in peers.values() if p.get("system") != "pausepoint" and "error" not in p]
    measures = [
        ("A", "durable_steps", "steps_per_s", True),
        ("B p50", "resume_latency", "p50_ms", False),
        ("C", "throughput", "per_s", True),
        ("D resume all", "many_paused", "resume_all_s", False),
    ]
    parts = []
    for name, workload, field, higher_is_better in measures:
        mine = (ours.get(workload) or {}).get(field)
        theirs = [
            ((p.get(workload) or {}).get(field), _label(p))
            for p in others
            if isinstance((p.get(workload) or {}).get(field), int | float)
        ]
        if not isinstance(mine, int | float) or not mine or not theirs:
            continue
        best, who = (max if higher_is_better else min)(theirs)
        if not best:
            continue
        ratio = mine / best if higher_is_better else best / mine
        parts.append(f"{name} {ratio:.1f}x ({who})")
    if not parts:
        return []
    return [
        "pausepoint (SQLite NORMAL) against the best peer on each workload "
        "(above 1x: pausepoint is better): " + "; ".join(parts) + "."
    ]


def temporal_runtime_section(results: dict[str, Any]) -> list[str]:
    """Plain temporalio vs pausepoint on the Temporal runtime (target: within 1.3x)."""
    peers: dict[str, dict[str, Any]] = results.get("peers") or {}
    ours = peers.get(TEMPORAL_RUNTIME_KEY) or results.get("temporal_runtime")
    # Measured on the same dev server as pausepoint when run.py did both; else the peer.
    plain = (ours or {}).get("plain") or peers.get("temporal-activity", {})
    lines = [
        "### pausepoint on Temporal vs plain Temporal",
        "",
        *remeasured(results, "temporal"),
        "Both on one dev server (SQLite file) in the same run: plain Temporal is hand-written",
        "temporalio (`bench/temporal_bench.py`: one activity per step, a signal then the next",
        "activity); pausepoint on Temporal runs a flow of `python` no-op tasks (each an",
        "activity) and a Pause task, through an API engine and a worker in the benchmark",
        "process (`bench/pausepoint_temporal.py`). Target: within 1.3 times for A and B.",
        "Both send each resume 50 ms after the run is waiting, as a person would long",
        "after, and take their resumes in five alternating rounds on the same server: its",
        "latency swings from run to run (plain Temporal's p50 has been 32 ms in one run and",
        "77 ms in the next), and alternating compares the two sides under the same swings.",
        "The last row resumes as soon as the store says PAUSED: the signal then",
        "waits for the workflow task that paused the run to complete (Temporal's own",
        "history writes).",
        "",
        "| system | A steps/s | B resume p50 / p99 (ms) |",
        "|---|---|---|",
        f"| plain Temporal (activities) | {_figure(plain, 'durable_steps', 'steps_per_s')} "
        f"| {_figure(plain, 'resume_latency', 'p50_ms', 'p99_ms')} |",
    ]
    if isinstance(ours, dict) and "error" not in ours:
        lines.append(
            f"| pausepoint on Temporal | {_figure(ours, 'durable_steps', 'steps_per_s')} "
            f"| {_figure(ours, 'resume_latency', 'p50_ms', 'p99_ms')} |"
        )
        if ours.get("resume_latency_at_once"):
            lines.append(
                "| pausepoint on Temporal, resumed the moment PAUSED is stored | - "
                f"| {_figure(ours, 'resume_latency_at_once', 'p50_ms', 'p99_ms')} |"
            )
        ratios = []
        a_plain = (plain.get("durable_steps") or {}).get("steps_per_s")
        a_ours = (ours.get("durable_steps") or {}).get("steps_per_s")
        if a_plain and a_ours:
            ratios.append(f"A {a_plain / a_ours:.2f}x plain Temporal's time per step")
        b_plain = (plain.get("resume_latency") or {}).get("p50_ms")
        b_ours = (ours.get("resume_latency") or {}).get("p50_ms")
        if b_plain and b_ours:
            ratios.append(f"B p50 {b_ours / b_plain:.2f}x plain Temporal's")
        if ratios:
            lines += [
                "",
                "pausepoint on Temporal against plain Temporal: " + ", ".join(ratios) + ".",
            ]
    elif isinstance(ours, dict):
        lines.append(f"| pausepoint on Temporal | not run: {ours['error']} | |")
    else:
        lines.append("| pausepoint on Temporal | not measured yet | not measured yet |")
    return lines


def draw_chart(results: dict[str, Any], path: Path) -> str | None:
    """Bar charts of A, B and C per system (log scale). Returns why not, if not drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter, NullFormatter
    except ImportError as error:
        return f"matplotlib not installed: {error}"
    peers = [
        p
        for p in (results.get("peers") or {}).values()
        if "error" not in p and p.get("key") != TEMPORAL_RUNTIME_KEY
    ]
    if not peers:
        return "no peer results"
    panels = [
        ("A. durable steps/s (higher is better)", "durable_steps", "steps_per_s"),
        ("B. resume p50, ms (lower is better)", "resume_latency", "p50_ms"),
        ("C. 3-step executions/s (higher is better)", "throughput", "per_s"),
    ]
    labels = [f"{p.get('system')}\n{p.get('variant')}" for p in peers]
    colours = ["#d62728" if p.get("system") == "pausepoint" else "#7f7f7f" for p in peers]
    figure, axes = plt.subplots(1, len(panels), figsize=(15, 5.2))
    for axis, (title, workload, field) in zip(axes, panels, strict=True):
        values = [float((p.get(workload) or {}).get(field) or 0) for p in peers]
        bars = axis.bar(range(len(peers)), values, color=colours)
        axis.set_yscale("log")
        axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axis.yaxis.set_minor_formatter(NullFormatter())
        axis.set_title(title, fontsize=10)
        axis.set_xticks(range(len(peers)), labels, rotation=60, ha="right", fontsize=8)
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
    figure.suptitle(f"pausepoint and its peers, same machine, same run ({sizes})", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return None
