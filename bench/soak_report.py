"""The soak's measurements (its recorder, what each window holds), verdicts and charts.

Memory must not grow (``memory_verdict``); latency must not drift (``latency_verdict``).
Both are pure functions of the series, robust to a noisy shared machine and still able
to fail: the unit tests in tests/chaos/test_soak.py feed them series that must fail.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from peers.common import percentile

HERE = Path(__file__).resolve().parent
CONTROL = frozenset({"pause", "resume", "cancel", "terminate", "inject", "bad_resume"})
READS = frozenset({"state", "get", "list", "audit"})
TERMINAL = frozenset({"COMPLETED", "WARNING", "FAILED", "CANCELLED", "TERMINATED", "TIMED_OUT"})
OPEN_STATES = ("QUEUED", "RUNNING", "PAUSING", "PAUSED", "CANCELLING")
# A window in which every other process on the machine used more than this (% of one
# core) measured the neighbours as much as the server: the latency verdict sets it aside.
BUSY_OTHERS_PCT = 50.0
# A window in which the speed probe's fixed work took this many times its usual CPU time
# (its lower quartile over the run) measured a slowed-down machine, not the server: the
# latency verdict sets it aside too. The probe's own window medians vary by about 10%.
SLOW_MACHINE_FACTOR = 1.25


# -- measuring ---------------------------------------------------------------------------


def progress(message: str) -> None:
    print(f"[soak] {message}", file=sys.stderr, flush=True)


def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` (VmRSS), MiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time process ``pid`` has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def waiting_seconds(pid: int) -> float:
    """How long the threads of process ``pid`` have waited, runnable, for a CPU (schedstat):
    time in which other processes had the cores this one wanted."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError), open(task / "schedstat") as schedstat:
            total += int(schedstat.read().split()[1])
    return total / 1e9


def group_of(kind: str) -> str:
    if kind in CONTROL:
        return "control"
    if kind in READS:
        return "read"
    return kind


@dataclass
class Window:
    """What happened during one window of the time series."""

    requests: Counter[str] = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    conflicts: int = 0
    sse_events: int = 0
    follows_ended: int = 0
    errors: int = 0


class Recorder:
    """Counts every request by kind and outcome; keeps the current window and the totals."""

    def __init__(self) -> None:
        self.window = Window()
        self.recording = True  # off once the load stops: drain and checks are not the soak
        self.requests: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.conflicts: Counter[str] = Counter()
        self.expected_422 = 0
        self.sse_events = 0
        self.follows_ended = 0
        self.errors: list[str] = []
        self.latencies: dict[str, list[float]] = {}
        self.by_kind: dict[str, list[float]] = {}

    def request(self, kind: str, status: int, ms: float) -> None:
        self.requests[kind] += 1
        self.statuses[f"{kind} {status}"] += 1
        if self.recording:
            group = group_of(kind)
            self.window.requests[kind] += 1
            self.window.latencies.setdefault(group, []).append(ms)
            self.latencies.setdefault(group, []).append(ms)
            self.by_kind.setdefault(kind, []).append(ms)

    def conflict(self, kind: str) -> None:
        self.conflicts[kind] += 1
        self.window.conflicts += 1

    def sse(self, events: int) -> None:
        self.sse_events += events
        self.window.sse_events += events

    def follow_ended(self) -> None:
        self.follows_ended += 1
        self.window.follows_ended += 1

    def error(self, message: str) -> None:
        self.errors.append(message)
        self.window.errors += 1
        if len(self.errors) <= 20:
            progress(f"error: {message}")

    def take_window(self) -> Window:
        window, self.window = self.window, Window()
        return window

    def totals(
        self, series: list[dict[str, Any]], *, minutes: float, warmup: float
    ) -> dict[str, Any]:
        """The whole load in figures: requests by kind and status, latencies, CPU, memory."""
        control = self.latencies.get("control", [])
        after_warmup = [s for s in series if s["t"] >= warmup]

        def mean(key: str) -> float | None:
            return (
                round(statistics.fmean(s[key] for s in after_warmup), 1) if after_warmup else None
            )

        return {
            "requests": dict(sorted(self.requests.items())),
            "statuses": dict(sorted(self.statuses.items())),
            "conflicts_409": dict(sorted(self.conflicts.items())),
            "expected_422": self.expected_422,
            "control_requests": len(control),
            "control_per_min": round(len(control) / minutes, 1),
            "control_ms": quantiles(control),
            "requests_per_s": mean("requests_total_per_s"),
            "latency_ms_by_kind": {
                kind: quantiles(ms) for kind, ms in sorted(self.by_kind.items())
            },
            "sse_events": self.sse_events,
            "sse_streams_followed_to_the_end": self.follows_ended,
            "server_cpu_pct_mean": mean("server_cpu_pct"),
            "load_cpu_pct_mean": mean("load_cpu_pct"),
            "others_cpu_pct_mean": mean("others_cpu_pct"),
            "rss_mib_start": series[0]["rss_mib"] if series else None,
            "errors": len(self.errors),
        }


def machine_cpu_seconds() -> float:
    """CPU time every core of the machine has spent busy so far, all processes."""
    with open("/proc/stat") as stat:
        ticks = [int(n) for n in stat.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def load_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def quantiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None, "n": 0}
    return {
        "p50": round(percentile(values, 50), 2),
        "p99": round(percentile(values, 99), 2),
        "n": len(values),
    }


def summarize_window(
    window: Window,
    *,
    t: float,
    seconds: float,
    rss: float,
    server_cpu: float,
    load_cpu: float,
    others_cpu: float,
    server_waiting: float,
    load_waiting: float,
    probe_us: float | None,
    executions: dict[str, int],
) -> dict[str, Any]:
    rates = {kind: round(n / seconds, 2) for kind, n in sorted(window.requests.items())}
    rates["total"] = round(sum(window.requests.values()) / seconds, 2)
    rates["control"] = round(
        sum(n for k, n in window.requests.items() if k in CONTROL) / seconds, 2
    )
    return {
        "t": round(t, 1),
        "requests_per_s": rates,
        "requests_total_per_s": rates["total"],
        "control_ms": quantiles(window.latencies.get("control", [])),
        "read_ms": quantiles(window.latencies.get("read", [])),
        "start_ms": quantiles(window.latencies.get("start", [])),
        "conflicts": window.conflicts,
        "errors": window.errors,
        "sse_events": window.sse_events,
        "sse_events_per_s": round(window.sse_events / seconds, 1),
        "follows_ended": window.follows_ended,
        "rss_mib": round(rss, 2),
        "server_cpu_pct": round(100 * server_cpu, 1),
        "load_cpu_pct": round(100 * load_cpu, 1),
        "others_cpu_pct": round(100 * others_cpu, 1),  # every other process on the machine
        # Of the window's wall time, how long each process waited, runnable, for a core.
        "server_waiting_pct": round(100 * server_waiting, 1),
        "load_waiting_pct": round(100 * load_waiting, 1),
        # The speed probe's median CPU time for its fixed work (bench/speed_probe.py).
        "probe_us": round(probe_us) if probe_us is not None else None,
        "executions_started": window.requests.get("start", 0),
        "executions_ended_total": sum(executions.get(s, 0) for s in TERMINAL),
        "executions_open_total": sum(executions.get(s, 0) for s in OPEN_STATES),
    }


# -- verdicts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """``ok`` when the property holds; ``conclusive`` is False when the run could not tell
    (then ``ok`` is False too, and ``detail`` says why)."""

    ok: bool
    detail: str
    figures: dict[str, float]
    conclusive: bool = True


def least_squares_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread


def memory_verdict(
    times: Sequence[float],
    rss: Sequence[float],
    *,
    run_seconds: float,
    warmup: float,
    max_growth_fraction: float = 0.10,
    floor_mib: float = 4.0,
) -> Verdict:
    """Memory must not grow.

    The least-squares slope of RSS over the second half of the run (and after the
    warm-up, while caches fill and the allocator finds its size), extrapolated over the
    whole run, must stay under ``max_growth_fraction`` of the warm RSS (``floor_mib`` at
    least, for the allocator's step-wise growth). A leak of a fixed size per request or
    per execution grows RSS linearly with the load, so it shows as a slope; bounded
    caches filling show as a curve that flattens, which the second half mostly misses.
    """
    start = max(warmup, run_seconds / 2)
    points = [(t, r) for t, r in zip(times, rss, strict=True) if t >= start]
    if len(points) < 4:
        return Verdict(False, f"only {len(points)} samples after {start:.0f} s", {})
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    slope = least_squares_slope(xs, ys)
    warm = statistics.median(ys)
    growth = slope * run_seconds
    bound = max(max_growth_fraction * warm, floor_mib)
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    figures = {
        "fit_from_s": xs[0],
        "fit_to_s": xs[-1],
        "fit_from_mib": round(mean_y + slope * (xs[0] - mean_x), 2),
        "fit_to_mib": round(mean_y + slope * (xs[-1] - mean_x), 2),
        "slope_kib_per_min": round(slope * 1024 * 60, 1),
        "warm_rss_mib": round(warm, 1),
        "growth_over_run_mib": round(growth, 2),
        "bound_mib": round(bound, 2),
        "samples": len(points),
    }
    ok = growth < bound
    detail = (
        f"RSS slope {figures['slope_kib_per_min']} KiB/min after {start:.0f} s: "
        f"{growth:+.1f} MiB over the {run_seconds / 60:.0f} min run "
        f"({'under' if ok else 'over'} the bound of {bound:.1f} MiB, "
        f"{max_growth_fraction:.0%} of the warm {warm:.0f} MiB)"
    )
    return Verdict(ok, detail, figures)


def set_aside(
    others_cpu: Sequence[float],
    probe_us: Sequence[float | None],
    *,
    busy_pct: float = BUSY_OTHERS_PCT,
    slow_factor: float = SLOW_MACHINE_FACTOR,
) -> list[str | None]:
    """Why each window measured the machine rather than the server, or None if it did not.

    "busy": every other process on the machine used more than ``busy_pct`` (% of one
    core); on a shared machine such a window measures the neighbours as much as the
    server. "slow": the speed probe needed more than ``slow_factor`` times its usual CPU
    time for the same work (``speed_probe``), so every process on the machine ran slower.
    What the server and the load generator use does not count, and a server that drifts
    does not slow the probe down, so a drifting server cannot hide its own windows.
    """
    timed = [us for us in probe_us if us is not None]
    usual = percentile(timed, 25) if timed else None
    reasons: list[str | None] = []
    for others, us in zip(others_cpu, probe_us, strict=True):
        if others > busy_pct:
            reasons.append("busy")
        elif usual is not None and us is not None and us > slow_factor * usual:
            reasons.append("slow")
        else:
            reasons.append(None)
    return reasons


def windows_set_aside(series: Sequence[dict[str, Any]]) -> list[str | None]:
    """``set_aside`` for a soak's windows (runs from before the probe have no probe_us)."""
    return set_aside([s["others_cpu_pct"] for s in series], [s.get("probe_us") for s in series])


def latency_verdict(
    times: Sequence[float],
    values: Sequence[float | None],
    *,
    warmup: float,
    aside: Sequence[str | None] | None = None,
    factor: float = 1.5,
    floor_ms: float = 5.0,
    quantile: float = 25.0,
    min_windows: int = 6,
) -> Verdict:
    """Latency must not drift.

    ``values`` is one latency figure per window (its p99, say; ``times`` the windows'
    ends) and ``aside`` why a window measured the machine rather than the server
    (``set_aside``); those windows are left out.

    The other windows after the warm-up are split in thirds, each summed up by the lower
    quartile of its windows' figures; the last third's must be within ``factor`` times
    the first third's, or within ``floor_ms`` of it (a few ms are noise). The lower
    quartile, because interference only ever adds latency, in bursts: a third's quieter
    windows show what the server itself does, and a server that drifts is slower in
    those too. Inconclusive (not a pass) with fewer than ``min_windows`` windows left,
    or when the first third's do not all lie in the first half of the run after the
    warm-up and the last third's in the second half: then early is not compared with late.
    """
    reasons = aside if aside is not None else [None] * len(times)
    after = [
        (t, v, reason)
        for t, v, reason in zip(times, values, reasons, strict=True)
        if t >= warmup and v is not None
    ]
    quiet = [(t, v) for t, v, reason in after if reason is None]
    counted = Counter(reason for _, _, reason in after if reason is not None)
    figures: dict[str, float] = {
        "windows": len(quiet),
        "windows_set_aside": len(after) - len(quiet),
        "windows_busy": counted["busy"],
        "windows_slow_machine": counted["slow"],
    }
    why = ", ".join(
        f"{n} {'busy' if reason == 'busy' else 'with the machine slowed down'}"
        for reason, n in sorted(counted.items())
    )
    if len(quiet) < min_windows:
        detail = (
            f"inconclusive: {len(quiet)} of {len(after)} windows after the warm-up measured "
            f"the server ({why} set aside; {min_windows} needed)"
        )
        return Verdict(False, detail, figures, conclusive=False)
    third = len(quiet) // 3
    early, late = quiet[:third], quiet[-third:]
    middle = (after[0][0] + after[-1][0]) / 2
    spans = (
        f"windows ending {early[0][0]:.0f}-{early[-1][0]:.0f} s "
        f"and {late[0][0]:.0f}-{late[-1][0]:.0f} s"
    )
    figures |= {
        "early_from_s": early[0][0],
        "early_to_s": early[-1][0],
        "late_from_s": late[0][0],
        "late_to_s": late[-1][0],
    }
    if early[-1][0] > middle or late[0][0] < middle:
        detail = (
            f"inconclusive: the windows left ({len(quiet)} of {len(after)}; {why} set aside) "
            f"do not span the run: its thirds would compare {spans}"
        )
        return Verdict(False, detail, figures, conclusive=False)
    first_values, last_values = [v for _, v in early], [v for _, v in late]
    first, last = percentile(first_values, quantile), percentile(last_values, quantile)
    limit = max(factor * first, first + floor_ms)
    figures |= {
        "first_third_ms": round(first, 2),
        "last_third_ms": round(last, 2),
        "limit_ms": round(limit, 2),
        "first_third_median_ms": round(statistics.median(first_values), 2),
        "last_third_median_ms": round(statistics.median(last_values), 2),
        "windows_per_third": third,
    }
    ok = last <= limit
    detail = (
        f"lower quartile of the windows: {first:.1f} ms in the first third after the "
        f"warm-up, {last:.1f} ms in the last ({'within' if ok else 'over'} the limit "
        f"{limit:.1f} ms: x{factor:g} or +{floor_ms:g} ms; {spans}"
        f"{'; set aside: ' + why if why else ''})"
    )
    return Verdict(ok, detail, figures)


def judge(series: list[dict[str, Any]], *, run_seconds: float, warmup: float) -> dict[str, Verdict]:
    """The soak's verdicts on its time series: memory, and control latency p99 and p50."""
    times = [s["t"] for s in series]
    aside = windows_set_aside(series)
    rss = [s["rss_mib"] for s in series]
    return {
        "memory": memory_verdict(times, rss, run_seconds=run_seconds, warmup=warmup),
        **{
            f"latency_{key}": latency_verdict(
                times, [s["control_ms"][key] for s in series], warmup=warmup, aside=aside
            )
            for key in ("p99", "p50")
        },
    }


# -- output ----------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        model = next(
            (line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line), ""
        )
    memory = ""
    with contextlib.suppress(OSError), open("/proc/meminfo") as meminfo:
        memory = next((line.split(":", 1)[1].strip() for line in meminfo), "")
    commit = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "memory": memory,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "commit": commit,
        "note": "2 cores shared with other work: figures are noisy",
    }


def waiting(window: dict[str, Any]) -> float:
    """How long the server and the load generator waited for a core in ``window`` (%)."""
    return float(window["server_waiting_pct"] + window["load_waiting_pct"])


def draw(result: dict[str, Any], out: Path) -> str | None:
    """soak-latency.png and soak-memory.png in ``out``. Returns why not, if not drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        return f"matplotlib not installed: {error}"
    series, settings = result["timeseries"], result["settings"]
    if len(series) < 2:
        return "fewer than two windows"
    minutes = [s["t"] / 60 for s in series]
    aside = windows_set_aside(series)
    warmup = settings["warmup"] / 60
    window = settings["window"] / 60  # a window's "t" is its end
    title = (
        f"pausepoint soak: {settings['minutes']:g} min, {settings['window']:g} s windows, "
        f"{result['machine']['cores']} shared cores"
    )

    def shade(axis: Any) -> None:
        axis.axvspan(0, warmup, color="#e8e8e8", label="warm-up")
        labels = {
            "busy": f"others > {BUSY_OTHERS_PCT:g}% CPU: set aside",
            "slow": f"machine slowed down (probe > x{SLOW_MACHINE_FACTOR:g}): set aside",
        }
        colours = {"busy": "#fde0c5", "slow": "#d9d2f0"}
        for m, reason in zip(minutes, aside, strict=True):
            if reason is not None:
                label = labels.pop(reason, None)  # one legend entry per reason
                axis.axvspan(m - window, m, color=colours[reason], label=label, linewidth=0)

    figure, (latency, rates, cpu) = plt.subplots(
        3, 1, figsize=(10, 9), sharex=True, height_ratios=(3, 2, 2)
    )
    shade(latency)
    for key, colour in (("p50", "#1f77b4"), ("p99", "#d62728")):
        values = [s["control_ms"][key] for s in series]
        latency.plot(minutes, values, color=colour, marker=".", label=f"control {key}")
    latency.set_ylabel("control request latency (ms)")
    latency.set_ylim(bottom=0)
    verdict = result["verdicts"]["latency_p99"]
    latency.set_title(
        f"{title}\n{textwrap.fill('p99 drift: ' + verdict['detail'], 140)}", fontsize=8
    )
    latency.legend(loc="upper right", fontsize=7, ncol=2)
    reads = [sum(s["requests_per_s"].get(k, 0) for k in READS) for s in series]
    rates.plot(
        minutes, [s["requests_per_s"]["total"] for s in series], color="#333333", label="all"
    )
    rates.plot(minutes, reads, color="#1f77b4", label="reads")
    rates.plot(
        minutes, [s["requests_per_s"]["control"] for s in series], color="#d62728", label="control"
    )
    rates.plot(
        minutes,
        [s["requests_per_s"].get("start", 0) for s in series],
        color="#2ca02c",
        label="starts",
    )
    rates.set_ylabel("requests/s")
    rates.set_ylim(0, 1.3 * max(s["requests_per_s"]["total"] for s in series))
    rates.legend(loc="upper right", fontsize=7, ncol=4)
    for key, colour, label in (
        ("server_cpu_pct", "#d62728", "server"),
        ("load_cpu_pct", "#2ca02c", "load generator"),
        ("others_cpu_pct", "#ff7f0e", "every other process"),
    ):
        cpu.plot(minutes, [s[key] for s in series], color=colour, label=label)
    cpu.plot(
        minutes,
        [waiting(s) for s in series],
        color="#7f7f7f",
        linestyle=":",
        label="server + load waiting for a core (% of time)",
    )
    cpu.set_ylabel("CPU (% of one core)")
    cpu.set_ylim(0, 100 * (result["machine"]["cores"] or 2))
    probe = [s.get("probe_us") for s in series]
    if any(us is not None for us in probe):
        speed = cpu.twinx()
        speed.plot(minutes, probe, color="#9467bd", linestyle="--", label="speed probe")
        speed.set_ylabel("speed probe: CPU µs per piece of work", fontsize=7)
        speed.set_ylim(bottom=0)
        speed.legend(loc="lower left", fontsize=7)
    cpu.set_xlabel("minutes")
    cpu.legend(loc="upper right", fontsize=7, ncol=2)
    figure.tight_layout()
    figure.savefig(out / "soak-latency.png", dpi=110)
    plt.close(figure)

    verdict = result["verdicts"]["memory"]
    fit = verdict["figures"]
    rss = [s["rss_mib"] for s in series]
    figure, (whole, zoomed) = plt.subplots(1, 2, figsize=(12, 4.5), width_ratios=(2, 3))
    for axis in (whole, zoomed):
        axis.axvspan(0, warmup, color="#e8e8e8", label="warm-up")
        axis.plot(minutes, rss, color="#d62728", marker=".", label="server RSS")
        axis.set_xlabel("minutes")
        if "fit_from_s" in fit:
            axis.plot(
                [fit["fit_from_s"] / 60, fit["fit_to_s"] / 60],
                [fit["fit_from_mib"], fit["fit_to_mib"]],
                color="#333333",
                linestyle="--",
                label=f"least-squares fit: {fit['slope_kib_per_min']:+g} KiB/min",
            )
            allowed = fit["fit_from_mib"] + fit["bound_mib"] * (
                (fit["fit_to_s"] - fit["fit_from_s"]) / settings["minutes"] / 60
            )
            axis.plot(
                [fit["fit_from_s"] / 60, fit["fit_to_s"] / 60],
                [fit["fit_from_mib"], allowed],
                color="#7f7f7f",
                linestyle=":",
                label="steepest slope allowed",
            )
    whole.set_ylim(0, 1.15 * max(rss))
    whole.set_ylabel("server resident memory (MiB)")
    whole.set_title("from zero", fontsize=8)
    zoomed.set_title("zoomed", fontsize=8)
    zoomed.legend(loc="lower right", fontsize=7)
    figure.suptitle(f"{title}\n{verdict['detail']}", fontsize=8)
    figure.tight_layout()
    figure.savefig(out / "soak-memory.png", dpi=110)
    plt.close(figure)
    return None
