"""The soak (issue 8): minutes of sustained mixed load on a real server process.

``bench/soak.py`` starts ``pausepoint server`` (a subprocess, a fresh SQLite file) and
loads it from this process: starts of three flows, pause / resume with typed inputs /
cancel / terminate / inject, reads, twenty SSE followers at a time. Afterwards nothing
may be lost and neither memory nor latency may have crept up. Quick mode (2 minutes,
half the load) runs in the normal suite; ``PAUSEPOINT_CHAOS_FULL=1``
(``make soak``) runs 30 minutes.

The verdicts are pure functions of the time series; the unit tests below feed them
series that must fail, so a passing soak means something.
"""

from __future__ import annotations

import math
import os
import random
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import soak  # noqa: E402
from soak_checks import expected_state  # noqa: E402
from soak_report import latency_verdict, memory_verdict, set_aside  # noqa: E402

FULL = os.environ.get("PAUSEPOINT_CHAOS_FULL") == "1"
# The quick soak runs 2 minutes at half the full load. Latency near saturation is
# queueing, not the server: a drift verdict judged there judges noise. At full load a
# burst of control traffic saturated the server's core (a 2-core machine shared with the
# load process) and the verdict failed on unchanged code in three runs of five; at three
# quarters of it, a CI machine that ran about 20% slower for most of a run (the speed
# probe's figure, bench/speed_probe.py) kept the server at 90-100% of a core and the
# verdict failed by 0.4 ms. Half the load leaves room for both. Drift shows at any load;
# the full run (30 minutes, 30 s windows, `make soak`) keeps the full rate.
# Quick: 2 minutes (20 s of warm-up, then twenty 5 s windows), for CI's 20 minute budget.
MINUTES = 30.0 if FULL else 2.0
RATE = 1.0 if FULL else 0.5


# -- the soak itself ---------------------------------------------------------------------


@pytest.mark.soak
@pytest.mark.timeout(int(MINUTES * 60) + 600)
async def test_sustained_mixed_load_loses_nothing_and_neither_grows_nor_drifts(
    tmp_path: Path,
) -> None:
    plan = soak.plan_for(MINUTES, rate=RATE)
    out = tmp_path / "out"
    out.mkdir()
    result = await soak.run(plan, out, tmp_path / "work")
    totals, checks, verdicts = result["totals"], result["checks"], result["verdicts"]
    summary = f"seed {plan.seed}; totals {totals}; checks {checks}"

    # No 5xx, no transport error, no unexpected status, nothing lost (soak_checks).
    assert result["errors"] == [], f"{len(result['errors'])} errors: {result['errors'][:10]}"
    assert checks["server_control_errors"] == 0, summary

    # The load was real: every kind of request, at a sustained rate.
    assert totals["control_per_min"] >= 600, summary
    for kind in ("start", "pause", "resume", "cancel", "terminate", "inject", "bad_resume"):
        assert totals["requests"].get(kind, 0) > 0, f"no {kind} request: {summary}"
    assert totals["expected_422"] > 0, summary
    assert totals["sse_streams_followed_to_the_end"] >= checks["executions"] // 4, summary
    assert len(result["timeseries"]) >= int(plan.seconds / plan.window) - 1, summary

    # Every execution was checked for its final state; the audits covered hundreds of
    # commands, and the typed inputs of Pause tasks reached the flow.
    assert checks["executions"] >= 100, summary
    assert sum(checks["final_states"].values()) == checks["executions"], summary
    for ended in ("approval COMPLETED", "long CANCELLED", "long TERMINATED", "steps COMPLETED"):
        assert checks["final_states"].get(ended, 0) > 0, f"no {ended}: {summary}"
    assert checks["commands_checked"] >= 300, summary
    assert checks["typed_inputs_checked"] > 0, summary

    assert verdicts["memory"]["ok"], verdicts["memory"]["detail"]
    judged = [name for name in ("latency_p99", "latency_p50") if verdicts[name]["conclusive"]]
    for name in judged:
        assert verdicts[name]["ok"], f"{name}: {verdicts[name]['detail']}"
    assert (out / "soak.json").exists()
    if result["charts_missing"] is None:
        assert (out / "soak-latency.png").stat().st_size > 0
        assert (out / "soak-memory.png").stat().st_size > 0
    if len(judged) < 2:
        # Everything else was asserted above; say plainly what could not be judged.
        pytest.skip(f"latency drift not judged: {verdicts['latency_p99']['detail']}")


# -- the verdicts, proven able to fail -------------------------------------------------------

RUN = 120.0  # the quick soak: 2 minutes in 5 s windows, 20 s warm-up
TIMES = [5.0 * i for i in range(1, 25)]
FULL_TIMES = [30.0 * i for i in range(1, 61)]


def flat_noisy(times: list[float], level: float, noise: float, seed: int = 7) -> list[float]:
    rng = random.Random(seed)
    return [level + rng.uniform(-noise, noise) for _ in times]


def test_memory_verdict_passes_a_flat_noisy_series() -> None:
    rss = flat_noisy(TIMES, 110.0, 1.5)
    verdict = memory_verdict(TIMES, rss, run_seconds=RUN, warmup=20.0)
    assert verdict.ok, verdict.detail


def test_memory_verdict_passes_warm_up_growth_that_levels_off() -> None:
    # Caches fill and the allocator grows during the first minute, then nothing more.
    rss = [100.0 + 12.0 * (1 - math.exp(-t / 15)) for t in TIMES]
    verdict = memory_verdict(TIMES, rss, run_seconds=RUN, warmup=20.0)
    assert verdict.ok, verdict.detail


def test_memory_verdict_fails_a_steady_leak() -> None:
    # 10 MiB per minute: unmistakable in two minutes.
    rss = [v + 10.0 * t / 60 for v, t in zip(flat_noisy(TIMES, 100.0, 1.0), TIMES, strict=True)]
    verdict = memory_verdict(TIMES, rss, run_seconds=RUN, warmup=20.0)
    assert not verdict.ok, verdict.detail
    assert verdict.figures["slope_kib_per_min"] > 5 * 1024


def test_memory_verdict_fails_a_slow_leak_over_the_full_run() -> None:
    # 0.5 MiB per minute is 15 MiB in 30 minutes: over 10% of a 100 MiB server.
    rss = [
        v + 0.5 * t / 60
        for v, t in zip(flat_noisy(FULL_TIMES, 100.0, 0.8), FULL_TIMES, strict=True)
    ]
    verdict = memory_verdict(FULL_TIMES, rss, run_seconds=1800.0, warmup=120.0)
    assert not verdict.ok, verdict.detail
    flat = memory_verdict(
        FULL_TIMES, flat_noisy(FULL_TIMES, 115.0, 0.8), run_seconds=1800.0, warmup=120.0
    )
    assert flat.ok, flat.detail


def test_memory_verdict_needs_samples_after_the_warm_up() -> None:
    verdict = memory_verdict(TIMES[:3], [100.0] * 3, run_seconds=RUN, warmup=20.0)
    assert not verdict.ok


def test_latency_verdict_passes_flat_latency_with_spikes() -> None:
    p99 = flat_noisy(TIMES, 20.0, 4.0)
    for spike in (6, 11, 15, 21):  # a neighbour's burst now and then, 5x
        p99[spike] *= 5
    verdict = latency_verdict(TIMES, p99, warmup=20.0)
    assert verdict.ok and verdict.conclusive, verdict.detail


def test_latency_verdict_fails_a_steady_drift() -> None:
    p99 = [20.0 + 0.4 * t + n for t, n in zip(TIMES, flat_noisy(TIMES, 0.0, 2.0), strict=True)]
    verdict = latency_verdict(TIMES, p99, warmup=20.0)
    assert not verdict.ok and verdict.conclusive, verdict.detail


def test_latency_verdict_fails_a_step_up_that_stays() -> None:
    p99 = [
        v * (2.0 if t > 90 else 1.0)
        for v, t in zip(flat_noisy(TIMES, 20.0, 2.0), TIMES, strict=True)
    ]
    verdict = latency_verdict(TIMES, p99, warmup=20.0)
    assert not verdict.ok, verdict.detail
    p50 = [
        v * (2.0 if t > 90 else 1.0)
        for v, t in zip(flat_noisy(TIMES, 3.0, 0.5), TIMES, strict=True)
    ]
    assert latency_verdict(TIMES, p50, warmup=20.0).ok, "a few ms more stay under the floor"
    p50 = [
        v + (8.0 if t > 90 else 0.0)
        for v, t in zip(flat_noisy(TIMES, 3.0, 0.5), TIMES, strict=True)
    ]
    assert not latency_verdict(TIMES, p50, warmup=20.0).ok, "8 ms more at p50 is a drift"


def test_latency_verdict_sets_aside_windows_the_neighbours_took() -> None:
    # From 75 s on other processes take 1.5 cores in all windows but three, and in those
    # windows latency is 6x.
    p99 = flat_noisy(TIMES, 20.0, 2.0)
    busy = [5.0] * len(TIMES)
    for i, t in enumerate(TIMES):
        if t >= 75 and t not in (85, 100, 115):
            p99[i] *= 6
            busy[i] = 150.0
    probe = [3000.0] * len(TIMES)
    verdict = latency_verdict(TIMES, p99, warmup=20.0, aside=set_aside(busy, probe))
    assert verdict.ok and verdict.conclusive, verdict.detail
    assert verdict.figures["windows_busy"] == 7, verdict.figures
    # The very same latencies on a quiet machine: the server drifted, and that fails.
    quiet = [5.0] * len(TIMES)
    verdict = latency_verdict(TIMES, p99, warmup=20.0, aside=set_aside(quiet, probe))
    assert not verdict.ok and verdict.conclusive, verdict.detail


def test_latency_verdict_sets_aside_windows_in_which_the_machine_slowed_down() -> None:
    # As seen on this machine in CI: from 75 s on, in all windows but three, nothing else
    # running, the server and the load generator need 1.6x their CPU for the same work,
    # and latency is 4x. The speed probe's fixed work takes 1.6x its usual CPU time then.
    p99 = flat_noisy(TIMES, 20.0, 2.0)
    probe = [3000.0 + n for n in flat_noisy(TIMES, 0.0, 150.0, seed=3)]
    for i, t in enumerate(TIMES):
        if t >= 75 and t not in (85, 100, 115):
            p99[i] *= 4
            probe[i] *= 1.6
    quiet = [2.0] * len(TIMES)
    verdict = latency_verdict(TIMES, p99, warmup=20.0, aside=set_aside(quiet, probe))
    assert verdict.ok and verdict.conclusive, verdict.detail
    assert verdict.figures["windows_slow_machine"] == 7, verdict.figures
    # The same latencies with the probe at its usual speed throughout: the server drifted.
    steady = [3000.0 + n for n in flat_noisy(TIMES, 0.0, 150.0, seed=3)]
    verdict = latency_verdict(TIMES, p99, warmup=20.0, aside=set_aside(quiet, steady))
    assert not verdict.ok and verdict.conclusive, verdict.detail


def test_set_aside_names_the_reason_and_judges_speed_against_the_runs_usual() -> None:
    others = [5.0, 80.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0]
    probe = [3000.0, 3100.0, None, 3300.0, 3900.0, 2900.0, 3050.0, 3500.0]
    # Usual: the lower quartile, 3012.5 µs; slow beyond 1.25x, 3765.6 µs.
    assert set_aside(others, probe) == [None, "busy", None, None, "slow", None, None, None]
    assert set_aside(others, [None] * len(others)) == [None, "busy"] + [None] * 6


def test_latency_verdict_does_not_compare_early_with_early() -> None:
    # Quiet only in the first half: the "last third" of the quiet windows is not late.
    busy = [5.0 if t <= 70 else 150.0 for t in TIMES]
    aside = set_aside(busy, [3000.0] * len(TIMES))
    verdict = latency_verdict(TIMES, flat_noisy(TIMES, 20.0, 2.0), warmup=20.0, aside=aside)
    assert not verdict.ok and not verdict.conclusive, verdict.detail


def test_latency_verdict_is_inconclusive_when_the_machine_was_busy_throughout() -> None:
    aside = set_aside([120.0] * len(TIMES), [3000.0] * len(TIMES))
    verdict = latency_verdict(TIMES, flat_noisy(TIMES, 20.0, 2.0), warmup=20.0, aside=aside)
    assert not verdict.ok and not verdict.conclusive, verdict.detail


def command(kind: str, status: str = "applied") -> dict[str, Any]:
    return {"kind": kind, "status": status}


def test_expected_state_follows_the_applied_commands() -> None:
    assert expected_state([command("pause"), command("resume"), command("inject")]) == "COMPLETED"
    assert expected_state([command("pause"), command("cancel")]) == "CANCELLED"
    assert expected_state([command("cancel"), command("terminate")]) == "TERMINATED"
    # Refused when applied (the execution had finished): it changes nothing.
    assert expected_state([command("cancel", "rejected")]) == "COMPLETED"
