"""The host loop: what every runtime does around the engine, written once.

A runtime (the embedded actor, the Temporal workflow, the sweep that carries
out a stuck terminate) picks an execution up from its last checkpoint, takes
in events, advances the engine over them and writes one checkpoint *before*
it carries out any action. Everything in that loop that is not I/O lives here:

- :func:`rebuild_state` turns a stored checkpoint back into the engine's state;
- :func:`opening_events` orders the start or the recovery against the
  commands still pending;
- :class:`StepInProgress` advances the engine over one step's events, handing
  the pure tasks it may run inline to its caller, and :meth:`~StepInProgress.finish`
  turns the result into a :class:`HostStep`: the pieces of the checkpoint,
  whether the runtime lets go of the execution, and the actions to carry out
  once the checkpoint is written.

Like the engine it is pure (no clock, no I/O, no asyncio): the Temporal
workflow runs it inside its sandbox, and it must stay deterministic there.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pausepoint.engine.interpreter import EngineEnv, advance, rebuild_outputs
from pausepoint.engine.model import (
    STATUS_BY_VALUE,
    Action,
    Command,
    Event,
    ExecutionStatus,
    LogEvent,
    Recovered,
    RunTask,
    Started,
    Transition,
)

__all__ = [
    "CORE_EXCLUDED",
    "HostStep",
    "StepInProgress",
    "advance_all",
    "core_state",
    "next_deadline",
    "opening_events",
    "rebuild_state",
    "take_step",
    "timer_due",
]

# Task runs have a table of their own, and outputs are an index rebuilt from them.
CORE_EXCLUDED = ("task_runs", "outputs")


def core_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """The part of the state stored in the executions row (task runs have their own table)."""
    return {key: value for key, value in state.items() if key not in CORE_EXCLUDED}


def rebuild_state(core: Mapping[str, Any], task_runs: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The engine's whole state from a checkpoint: its stored core and its task runs."""
    state = dict(core)
    state["task_runs"] = {run["id"]: run for run in task_runs}
    rebuild_outputs(state)
    return state


def opening_events(
    status: str, event_seq: int, at: float, pending: Iterable[Command]
) -> list[Event]:
    """The events a runtime feeds first when it picks an execution up.

    ``pending`` are the commands accepted and not yet applied, in acceptance
    order. An execution that never ran (QUEUED, nothing logged) applies them
    before it starts: a pause or cancel sent then must keep its first task from
    ever running. Any other one recovers first (tasks in flight are issued
    again, timers armed again), then applies them.
    """
    if status == ExecutionStatus.QUEUED and event_seq == 0:
        return [*pending, Started(at)]
    return [Recovered(at), *pending]


def timer_due(state: Mapping[str, Any], now: float) -> bool:
    """Whether a timer of the execution fell due at ``now``."""
    return any(timer["deadline"] <= now for timer in state["timers"].values())


def next_deadline(state: Mapping[str, Any]) -> float | None:
    """The earliest deadline among the execution's timers."""
    deadlines = [timer["deadline"] for timer in state["timers"].values()]
    return min(deadlines) if deadlines else None


def advance_all(state: dict[str, Any], events: Iterable[Event], env: EngineEnv) -> Transition:
    """Feed ``events`` to the engine one by one; everything they produced, as one transition."""
    combined = Transition(state)
    for event in events:
        combined.absorb(advance(state, event, env))
    return combined


@dataclass(slots=True)
class HostStep:
    """One step, ready to be written as one checkpoint, then acted on.

    Nothing in it has happened outside the engine yet: the runtime commits the
    checkpoint made of these pieces, and only then carries out ``actions``.
    """

    status: ExecutionStatus
    # The core of the state (what the executions row stores; see core_state).
    state: dict[str, Any]
    started_at: float | None
    ended_at: float | None
    # Every task run the step changed, as it is now.
    task_runs: list[dict[str, Any]]
    # The step's log events; the first is numbered ``first_seq``, the rest follow.
    events: list[LogEvent]
    first_seq: int
    # The execution's event sequence number after the step.
    event_seq: int
    # (command id, applied, message, state after), in the order they were decided.
    command_results: list[tuple[str, bool, str, str]]
    # The runtime lets go of the execution (it finished, or it is paused and idle).
    release: bool
    # When a released, unfinished execution must be taken up again (its next timer).
    wake_at: float | None
    actions: list[Action]


class StepInProgress:
    """The engine advancing over one step's events, in the order they came.

    Pure tasks (those of ``inline_types``: nothing outside the execution sees
    them run) may run inside the step that starts them, up to ``inline_limit``
    of them: the step hands each to its caller, who runs it and :meth:`add`\\ s
    its outcome, which the engine takes after the events already in hand. A
    chain of them then costs one checkpoint, not one each, and is bounded so
    that commands and other executions never wait long::

        step = StepInProgress(state, env, events, inline_types=PURE, inline_limit=64)
        while (task := step.next_inline_task()) is not None:
            step.add(await run(task))
        done = step.finish(event_seq=seq)

    ``state`` is advanced in place, as :func:`advance` does.
    """

    __slots__ = (
        "_handed_out",
        "_inline",
        "_inline_left",
        "_inline_types",
        "_pending",
        "env",
        "state",
        "taken",
    )

    def __init__(
        self,
        state: dict[str, Any],
        env: EngineEnv,
        events: Iterable[Event],
        *,
        inline_types: Collection[str] = (),
        inline_limit: int = 0,
    ) -> None:
        self.state = state
        self.env = env
        # What the events produced so far, actions that run inline left out.
        self.taken = Transition(state)
        self._pending: deque[Event] = deque(events)
        self._inline: deque[RunTask] = deque()
        self._inline_left = inline_limit if inline_types else 0
        self._inline_types = inline_types
        self._handed_out = 0  # inline tasks whose outcome has not come back yet

    def next_inline_task(self) -> RunTask | None:
        """Advance until a pure task is to run inline; ``None`` once every event is taken."""
        while not self._inline:
            if not self._pending:
                return None
            transition = advance(self.state, self._pending.popleft(), self.env)
            actions = self.taken.actions
            for action in transition.actions:
                if (
                    self._inline_left
                    and isinstance(action, RunTask)
                    and action.task_type in self._inline_types
                    and not action.spec.get("logToFile")  # it writes a file: a runtime's I/O
                ):
                    self._inline_left -= 1
                    self._inline.append(action)
                else:
                    actions.append(action)
            self.taken.absorb(transition, actions=False)
        self._handed_out += 1
        return self._inline.popleft()

    def add(self, outcome: Event) -> None:
        """The outcome of a task handed out by :meth:`next_inline_task`."""
        self._handed_out -= 1
        self._pending.append(outcome)

    def finish(
        self,
        *,
        event_seq: int,
        release_when_paused: bool = False,
        more_events: bool = False,
        now: float | None = None,
    ) -> HostStep:
        """The step as a checkpoint; ``event_seq`` is the execution's sequence number before it.

        A finished execution is released. A paused one is released too when the
        runtime lets paused executions go (``release_when_paused``) and it is
        idle: nothing in flight, no ``more_events`` waiting, no timer due at
        ``now`` (a timer already due must fire in this runtime, not wait for
        whoever polls next). Its earliest timer is then its ``wake_at``.
        """
        if self._handed_out or self.next_inline_task() is not None:
            raise RuntimeError("finish() while a task handed out to run inline has not reported")
        state = self.state
        taken = self.taken
        status = STATUS_BY_VALUE[state["status"]]
        release = status.is_terminal
        if (
            not release
            and release_when_paused
            and status is ExecutionStatus.PAUSED
            and not state["inflight"]
            and not more_events
        ):
            if now is None:
                raise ValueError("releasing a paused execution needs now, to see its timers due")
            release = not timer_due(state, now)
        task_runs = state["task_runs"]
        return HostStep(
            status=status,
            state=core_state(state),
            started_at=state["started_at"],
            ended_at=state["ended_at"],
            task_runs=[task_runs[run_id] for run_id in taken.changed_task_runs],
            events=taken.events,
            first_seq=event_seq + 1,
            event_seq=event_seq + len(taken.events),
            command_results=[
                (r.command_id, r.applied, r.message, r.status.value) for r in taken.command_results
            ],
            release=release,
            wake_at=next_deadline(state) if release and not status.is_terminal else None,
            actions=taken.actions,
        )


def take_step(
    state: dict[str, Any], env: EngineEnv, events: Iterable[Event], *, event_seq: int
) -> HostStep:
    """One step with no task run inline, and no paused execution released."""
    return StepInProgress(state, env, events).finish(event_seq=event_seq)
