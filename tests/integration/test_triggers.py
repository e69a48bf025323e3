"""Kestra's triggers on a controllable clock: schedules fire once per tick (across a restart
and across two processes), paused triggers fire nothing, resuming QUEUEs or DROPs what was
missed, Flow triggers follow ended executions, webhooks need their key.

The engine's clock is a value the test moves; ``Engine.fire_triggers()`` is one pass of
the loop a server runs every ``trigger_interval``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pausepoint.config import Settings
from pausepoint.errors import NotFound
from pausepoint.models import ExecutionView
from pausepoint.service.engine import Engine
from pausepoint.testing import fast_settings

NAMESPACE = "kestra.triggers"
TIMEOUT = 20.0


class Clock:
    """A clock the test sets; the engine reads it for everything it timestamps."""

    def __init__(self, iso: str) -> None:
        self.now = at(iso)

    def __call__(self) -> float:
        return self.now

    def set(self, iso: str) -> None:
        self.now = at(iso)


def at(iso: str) -> float:
    return datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp()


def scheduled(cron: str = "* * * * *", **extra: str) -> str:
    lines = "".join(f"    {key}: {value}\n" for key, value in extra.items())
    return f"""
id: scheduled
namespace: {NAMESPACE}
inputs:
  - id: when
    type: STRING
triggers:
  - id: every
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "{cron}"
    inputs:
      when: "{{{{ trigger.date }}}}"
{lines}tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "{{{{ inputs.when }}}} / {{{{ trigger.date }}}}"
"""


async def fired_ticks(engine: Engine) -> list[str]:
    records = await engine.list_executions(flow_id="scheduled", limit=1000)
    ticks = []
    for record in records:
        view = await engine.execution(record.id)
        ticks.append(view.inputs["when"])
    return sorted(ticks)


@pytest.fixture
def clock() -> Clock:
    return Clock("2026-01-01T00:00:30")


@pytest.fixture
def settings(db_path: Path) -> Settings:
    return fast_settings(db_path, trigger_misfire_grace=60.0)


@pytest.fixture
async def engine(settings: Settings, clock: Clock) -> AsyncIterator[Engine]:
    async with Engine(settings, clock=clock) as running:
        yield running


async def test_a_schedule_fires_once_per_tick_with_the_tick_as_trigger_date(
    engine: Engine, clock: Clock
) -> None:
    await engine.put_flow(scheduled())
    (view,) = await engine.triggers(NAMESPACE, "scheduled")
    assert (view.type, view.next_fire, view.paused) == (
        "schedule",
        "2026-01-01T00:01:00.000Z",
        False,
    )
    assert await engine.fire_triggers() == 0  # nothing due yet
    clock.set("2026-01-01T00:01:00.500")
    assert await engine.fire_triggers() == 1
    assert await engine.fire_triggers() == 0  # the same tick never fires twice
    clock.set("2026-01-01T00:02:10")
    assert await engine.fire_triggers() == 1
    assert await fired_ticks(engine) == ["2026-01-01T00:01:00.000Z", "2026-01-01T00:02:00.000Z"]
    newest = (await engine.list_executions(flow_id="scheduled"))[0]
    execution = await engine.wait(newest.id, timeout=TIMEOUT)
    assert execution.state == "COMPLETED", execution.error
    assert execution.inputs == {"when": "2026-01-01T00:02:00.000Z"}
    (trigger,) = await engine.triggers(NAMESPACE, "scheduled")
    assert trigger.last_execution_id == execution.id
    assert trigger.next_fire == "2026-01-01T00:03:00.000Z"


async def test_a_schedule_fires_once_per_tick_across_a_restart(
    settings: Settings, clock: Clock
) -> None:
    async with Engine(settings, clock=clock) as engine:
        await engine.put_flow(scheduled())
        clock.set("2026-01-01T00:01:05")
        assert await engine.fire_triggers() == 1
    async with Engine(settings, clock=clock) as engine:
        assert await engine.fire_triggers() == 0
        clock.set("2026-01-01T00:02:05")
        assert await engine.fire_triggers() == 1
        assert await fired_ticks(engine) == [
            "2026-01-01T00:01:00.000Z",
            "2026-01-01T00:02:00.000Z",
        ]


async def test_two_processes_never_fire_the_same_tick(db_path: Path, clock: Clock) -> None:
    settings = fast_settings(db_path, lease_ttl=300.0)
    async with Engine(settings, clock=clock) as first, Engine(settings, clock=clock) as second:
        await first.put_flow(scheduled())
        clock.set("2026-01-01T00:01:05")
        assert await first.fire_triggers() == 1
        assert await second.fire_triggers() == 0  # the first holds the scheduler's lease
        clock.set("2026-01-01T00:02:05")
        assert await second.fire_triggers() == 0
        assert await first.fire_triggers() == 1
        # The first process stops renewing: once its lease runs out, the second takes over.
        clock.now += settings.lease_ttl + 1  # 00:07:06: five ticks went by, none fired
        assert await second.fire_triggers() == 5
        assert await first.fire_triggers() == 0
        assert await fired_ticks(first) == [
            f"2026-01-01T00:{minute:02d}:00.000Z" for minute in range(1, 8)
        ]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("ALL", [f"2026-01-01T00:{minute:02d}:00.000Z" for minute in range(1, 11)]),
        ("LAST", ["2026-01-01T00:10:00.000Z"]),
        ("NONE", ["2026-01-01T00:10:00.000Z"]),
    ],
)
async def test_missed_ticks_follow_recover_missed_schedules(
    engine: Engine, clock: Clock, policy: str, expected: list[str]
) -> None:
    await engine.put_flow(scheduled(recoverMissedSchedules=policy))
    clock.set("2026-01-01T00:10:05")  # nothing ran for ten minutes; 00:10 is on time
    await engine.fire_triggers()
    assert await fired_ticks(engine) == expected


async def test_a_paused_trigger_fires_nothing_and_queue_fires_what_it_missed(
    engine: Engine, clock: Clock
) -> None:
    await engine.put_flow(scheduled(recoverMissedSchedules="NONE"))
    paused = await engine.pause_trigger(NAMESPACE, "scheduled", "every")
    assert paused.paused
    clock.set("2026-01-01T00:03:30")
    assert await engine.fire_triggers() == 0
    resumed = await engine.resume_trigger(NAMESPACE, "scheduled", "every", catch_up="QUEUE")
    assert not resumed.paused
    assert await engine.fire_triggers() == 3
    assert await fired_ticks(engine) == [
        "2026-01-01T00:01:00.000Z",
        "2026-01-01T00:02:00.000Z",
        "2026-01-01T00:03:00.000Z",
    ]


async def test_resuming_with_drop_fires_only_the_ticks_after_it(
    engine: Engine, clock: Clock
) -> None:
    await engine.put_flow(scheduled())
    await engine.pause_trigger(NAMESPACE, "scheduled", "every")
    clock.set("2026-01-01T00:03:30")
    await engine.resume_trigger(NAMESPACE, "scheduled", "every", catch_up="DROP")
    assert await engine.fire_triggers() == 0
    clock.set("2026-01-01T00:04:01")
    assert await engine.fire_triggers() == 1
    assert await fired_ticks(engine) == ["2026-01-01T00:04:00.000Z"]


async def test_seconds_time_zones_and_backfill(engine: Engine, clock: Clock) -> None:
    await engine.put_flow(
        scheduled(
            "0 0 9 * * *",
            withSeconds="true",
            timezone="Europe/Paris",
            backfill="{start: 2025-12-29T00:00:00Z}",
        )
    )
    (view,) = await engine.triggers(NAMESPACE, "scheduled")
    assert view.next_fire == "2026-01-01T08:00:00.000Z"  # 09:00 in Paris
    await engine.fire_triggers()
    assert await fired_ticks(engine) == [
        "2025-12-29T08:00:00.000Z",
        "2025-12-30T08:00:00.000Z",
        "2025-12-31T08:00:00.000Z",
    ]
    assert (await engine.triggers(NAMESPACE, "scheduled"))[0].backfill_next is None


async def test_a_disabled_flow_or_trigger_fires_nothing(engine: Engine, clock: Clock) -> None:
    await engine.put_flow(scheduled() + "disabled: true\n")
    clock.set("2026-01-01T00:01:05")
    assert await engine.fire_triggers() == 0
    await engine.put_flow(scheduled().replace("    cron:", "    disabled: true\n    cron:"))
    clock.set("2026-01-01T00:02:05")
    assert await engine.fire_triggers() == 0
    assert await fired_ticks(engine) == []


FOLLOWER = f"""
id: follower
namespace: {NAMESPACE}
inputs:
  - id: upstream
    type: STRING
triggers:
  - id: after
    type: io.kestra.plugin.core.trigger.Flow
    inputs:
      upstream: "{{{{ trigger.executionId }}}}:{{{{ trigger.state }}}}"
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionStatus
        in: [SUCCESS]
      - type: io.kestra.plugin.core.condition.ExecutionFlow
        namespace: {NAMESPACE}
        flowId: upstream
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "{{{{ inputs.upstream }}}}"
"""

UPSTREAM = f"""
id: upstream
namespace: {NAMESPACE}
inputs:
  - id: fail
    type: BOOLEAN
    defaults: false
tasks:
  - id: maybe
    type: io.kestra.plugin.core.execution.Fail
    condition: "{{{{ inputs.fail }}}}"
"""


async def followers(engine: Engine) -> list[str]:
    records = await engine.list_executions(flow_id="follower")
    return sorted([(await engine.execution(r.id)).inputs["upstream"] for r in records])


async def test_a_flow_trigger_starts_when_a_matching_execution_ends(
    engine: Engine, clock: Clock
) -> None:
    await engine.put_flow(UPSTREAM)
    await engine.put_flow(FOLLOWER)
    await engine.fire_triggers()  # the first pass marks where history ends
    clock.set("2026-01-01T00:00:31")
    ok = await engine.wait((await engine.start_execution(NAMESPACE, "upstream")).id)
    failed = await engine.wait(
        (await engine.start_execution(NAMESPACE, "upstream", inputs={"fail": True})).id
    )
    assert (ok.state, failed.state) == ("COMPLETED", "FAILED")
    assert await engine.fire_triggers() == 1
    assert await engine.fire_triggers() == 0
    assert await followers(engine) == [f"{ok.id}:SUCCESS"]


async def test_a_paused_flow_trigger_with_queue_catches_up(engine: Engine, clock: Clock) -> None:
    await engine.put_flow(UPSTREAM)
    await engine.put_flow(FOLLOWER)
    await engine.fire_triggers()
    await engine.pause_trigger(NAMESPACE, "follower", "after")
    clock.set("2026-01-01T00:00:31")
    ok = await engine.wait((await engine.start_execution(NAMESPACE, "upstream")).id)
    assert await engine.fire_triggers() == 0
    await engine.resume_trigger(NAMESPACE, "follower", "after", catch_up="QUEUE")
    assert await followers(engine) == [f"{ok.id}:SUCCESS"]


WEBHOOK = f"""
id: hooked
namespace: {NAMESPACE}
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: s3cret-key
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "{{{{ trigger.body.order }}}} {{{{ trigger.parameters.source }}}}"
"""


async def test_a_webhook_starts_only_with_its_key(engine: Engine) -> None:
    await engine.put_flow(WEBHOOK)
    started = await engine.fire_webhook(
        NAMESPACE, "hooked", "s3cret-key", body={"order": 42}, parameters={"source": "shop"}
    )
    view: ExecutionView = await engine.wait(started.id, timeout=TIMEOUT)
    assert view.state == "COMPLETED", view.error
    for flow_id, key in (("hooked", "wrong"), ("nope", "s3cret-key")):
        with pytest.raises(NotFound):
            await engine.fire_webhook(NAMESPACE, flow_id, key, body={})
    await engine.pause_trigger(NAMESPACE, "hooked", "hook")
    with pytest.raises(NotFound):
        await engine.fire_webhook(NAMESPACE, "hooked", "s3cret-key", body={})
    assert len(await engine.list_executions(flow_id="hooked")) == 1


VALIDS = Path(__file__).resolve().parents[1] / "kestra" / "valids"


async def test_kestras_newer_flow_trigger_states_and_depends_on(
    engine: Engine, clock: Clock
) -> None:
    """Kestra's flow-trigger-multiple-conditions flows: a Flow trigger's ``states`` and a
    ``dependsOn`` of one flow. The upstream's SUCCESS fires ``on_completion`` once and
    ``on_failure`` never."""
    for name in (
        "flow-trigger-multiple-conditions-flow-a.yaml",
        "flow-trigger-multiple-conditions-flow-listen.yaml",
    ):
        await engine.put_flow_file(VALIDS / name)
    await engine.fire_triggers()  # the first pass marks where history ends
    clock.set("2026-01-01T00:00:31")
    namespace = "io.kestra.tests.trigger.multiple.conditions"
    upstream = await engine.start_execution(namespace, "flow-trigger-multiple-conditions-flow-a")
    assert (await engine.wait(upstream.id)).state == "COMPLETED"
    assert await engine.fire_triggers() == 1
    assert await engine.fire_triggers() == 0
    (started,) = await engine.list_executions(
        flow_id="flow-trigger-multiple-conditions-flow-listen"
    )
    view = await engine.execution(started.id)
    assert (view.trigger or {})["executionId"] == upstream.id
    assert (view.trigger or {})["state"] == "SUCCESS"
