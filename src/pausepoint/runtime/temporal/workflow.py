"""The one generic workflow: it drives the pure engine for one execution.

Each step is the host loop's (:mod:`pausepoint.engine.host`), as in the
embedded runtime: feed the engine what happened, write the checkpoint to the
store (an idempotent local activity), then carry out the actions: tasks become
activities, timers workflow timers.
Control commands arrive as signals carrying the command the control plane
recorded; they are applied in the order they were accepted, each exactly
once, also across continue-as-new.

Nothing here reads a clock or does I/O: time is ``workflow.now()``, and the
flow and secrets come from the activity that loads the execution.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, CancelledError

with workflow.unsafe.imports_passed_through():
    from pausepoint.engine.flowindex import FlowIndex
    from pausepoint.engine.host import (
        HostStep,
        advance_all,
        opening_events,
        rebuild_state,
        take_step,
    )
    from pausepoint.engine.interpreter import EngineEnv
    from pausepoint.engine.model import (
        Action,
        CancelTask,
        ClearTimer,
        Command,
        CommandKind,
        Event,
        Recovered,
        RunTask,
        SetTimer,
        TaskCancelled,
        TaskFailed,
        TaskSucceeded,
        TimerFired,
    )
    from pausepoint.flow import load_flow
    from pausepoint.runtime.temporal.messages import (
        CHECKPOINT_ACTIVITY,
        COMMAND_SIGNAL,
        DIVERGED,
        LOAD_ACTIVITY,
        RUN_TASK_ACTIVITY,
        STATE_QUERY,
        WORKFLOW_NAME,
        Carried,
        CommandMessage,
        EventData,
        ExecutionInput,
        LoadedExecution,
        Projection,
        TaskInput,
        TaskOutcome,
    )

STORE_TIMEOUT = timedelta(seconds=30)
# The engine enforces each task's own timeout with a timer; this bound only has
# to exist (Temporal requires one) and must not cut a legitimate long task short.
TASK_RUN_LIMIT = timedelta(days=365)
# A lost worker is retried for as long as it takes: the task's own failures are
# outcomes, not activity failures, and never come back here.
WORKER_LOSS_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=0)


def engine_env(
    flow_source: str, flow_revision: int, secrets: dict[str, str], public_url: str = ""
) -> EngineEnv:
    flow = load_flow(flow_source, source="<stored flow>")
    index = FlowIndex.build(flow.model_copy(update={"revision": flow_revision}))
    return EngineEnv(index, secrets, public_url)


__all__ = ["ExecutionWorkflow", "advance_all", "engine_env"]


@workflow.defn(name=WORKFLOW_NAME)
class ExecutionWorkflow:
    @workflow.init
    def __init__(self, start: ExecutionInput) -> None:
        self._execution_id = start.execution_id
        self._options = start.options
        self._inbox: list[Event] = []
        # Commands that arrived before one accepted earlier, by their sequence number.
        self._waiting: dict[int, CommandMessage] = {}
        self._next_command_seq: int | None = None  # known once the execution is loaded
        self._tasks: dict[str, workflow.ActivityHandle[TaskOutcome]] = {}
        self._task_attempts: dict[str, int] = {}
        # How often this run took the store's state over (see _take_over): activities
        # started after that get ids of their own, apart from ones still being cancelled.
        self._generation = 0
        self._timers: dict[str, asyncio.Task[None]] = {}
        self._state: dict[str, Any] = {}
        self._event_seq = 0
        # What engine_env is built from: flow source, revision, secrets, public url.
        self._flow: tuple[str, int, dict[str, str], str] = ("", 0, {}, "")

    # -- control ----------------------------------------------------------------

    @workflow.signal(name=COMMAND_SIGNAL)
    def command(self, message: CommandMessage) -> None:
        """A command the control plane recorded; re-deliveries are ignored."""
        if self._next_command_seq is not None and message.seq < self._next_command_seq:
            return
        self._waiting[message.seq] = message
        self._inbox.extend(self._ready_commands())

    def _ready_commands(self) -> list[Command]:
        """The waiting commands next in acceptance order, taken off the waiting list."""
        ready: list[Command] = []
        if self._next_command_seq is None:
            return ready
        while (message := self._waiting.pop(self._next_command_seq, None)) is not None:
            ready.append(
                Command(
                    id=message.id,
                    kind=CommandKind(message.kind),  # recorded by the control plane
                    at=message.at,
                    by=message.by,
                    reason=message.reason,
                    payload=message.payload,
                    traceparent=message.traceparent,
                )
            )
            self._next_command_seq += 1
        return ready

    @workflow.query(name=STATE_QUERY)
    def state(self) -> dict[str, Any]:
        """The live status as the engine sees it (the store may lag by one step)."""
        return {
            "execution_id": self._execution_id,
            "status": self._state.get("status"),
            "checkpoint": self._state.get("checkpoint"),
            "event_seq": self._event_seq,
        }

    # -- the loop ---------------------------------------------------------------

    @workflow.run
    async def run(self, start: ExecutionInput) -> str:
        if start.carried is not None:
            self._continue(start.carried)
        else:
            loaded = await self._load()
            if loaded.state is None:
                return loaded.status  # it finished before this workflow ran
            self._begin(loaded)
        env = engine_env(*self._flow)
        while True:
            await workflow.wait_condition(lambda: bool(self._inbox))
            events, self._inbox = self._inbox, []
            step = take_step(self._state, env, events, event_seq=self._event_seq)
            while not await self._checkpoint(step):
                loaded = await self._load()
                if loaded.state is None:  # the stored step finished the execution
                    self._abandon_tasks({})
                    return loaded.status
                step = self._take_over(loaded, events, env)
            if step.status.is_terminal:
                for action in step.actions:
                    self._perform(action)  # terminate kills what still runs
                return step.status.value
            if self._should_continue_as_new(step.actions):
                workflow.continue_as_new(
                    dataclasses.replace(start, carried=self._carry(step.actions))
                )
            for action in step.actions:
                self._perform(action)

    def _begin(self, loaded: LoadedExecution) -> None:
        self._take_checkpoint(loaded)
        self._flow = (
            loaded.flow_source,
            loaded.flow_revision,
            loaded.secrets,
            loaded.public_url,
        )
        self._inbox.extend(
            opening_events(loaded.status, loaded.event_seq, self._now(), self._ready_commands())
        )

    def _take_checkpoint(self, loaded: LoadedExecution) -> None:
        """Continue from the store's last checkpoint, with the commands it has not applied."""
        assert loaded.state is not None
        self._state = rebuild_state(loaded.state, loaded.state["task_runs"].values())
        self._event_seq = loaded.event_seq
        self._next_command_seq = loaded.next_command_seq
        self._waiting = {
            seq: message for seq, message in self._waiting.items() if seq >= loaded.next_command_seq
        }
        for message in loaded.pending:
            self._waiting[message.seq] = message

    async def _load(self) -> LoadedExecution:
        loaded: LoadedExecution = await workflow.execute_local_activity(
            LOAD_ACTIVITY,
            self._execution_id,
            result_type=LoadedExecution,
            start_to_close_timeout=STORE_TIMEOUT,
        )
        return loaded

    def _take_over(self, loaded: LoadedExecution, batch: list[Event], env: EngineEnv) -> HostStep:
        """Continue from the store's last checkpoint instead of from this run's last step.

        The store holds a step that a lost workflow task took: the task wrote its
        checkpoint, then its worker died or a signal arrived as it completed, and
        Temporal ran it again with more in hand. What the store shows is what
        happened, so this run takes it over as a workflow takes over an execution
        in progress (``Recovered``): tasks in flight run again, unless this run
        still runs them; timers are armed again. Task results and timers this run
        received go in again (the engine drops those the stored step already
        used); commands come again from the store, which knows which it applied.
        """
        self._generation += 1
        self._take_checkpoint(loaded)
        # Results that arrived while the checkpoint was written count as well: a task
        # whose answer is in hand must not be started again.
        outcomes = [
            event
            for event in [*batch, *self._inbox]
            if isinstance(event, TaskSucceeded | TaskFailed | TaskCancelled | TimerFired)
        ]
        self._inbox = []
        for timer_id in list(self._timers):
            self._clear_timer(timer_id)
        step = take_step(
            self._state, env, [Recovered(self._now()), *outcomes], event_seq=self._event_seq
        )
        runs = self._state["task_runs"]
        inflight = {
            run_id: runs[run_id]["attempt"] for run_id in self._state["inflight"] if run_id in runs
        }
        self._abandon_tasks(inflight)
        started: set[str] = set()
        actions: list[Action] = []
        for action in step.actions:
            if isinstance(action, RunTask):
                run_id = action.task_run_id
                if (
                    inflight.get(run_id) != action.attempt
                    or run_id in self._tasks
                    or run_id in started
                ):
                    continue  # finished in this same step, still running here, or twice
                started.add(run_id)
            actions.append(action)
        step.actions = actions
        self._inbox.extend(self._ready_commands())
        return step

    def _abandon_tasks(self, keep: dict[str, int]) -> None:
        """Cancel the activities of task runs not in ``keep`` (run id -> attempt); drop their
        answers."""
        for run_id, handle in list(self._tasks.items()):
            if keep.get(run_id) == self._task_attempts[run_id]:
                continue
            del self._tasks[run_id]
            del self._task_attempts[run_id]
            handle.cancel()

    async def _checkpoint(self, step: HostStep) -> bool:
        """Write the step to the store; False when the store holds another step (see _take_over)."""
        projection = Projection(
            execution_id=self._execution_id,
            status=step.status.value,
            state=step.state,
            started_at=step.started_at,
            ended_at=step.ended_at,
            task_runs=step.task_runs,
            events=[
                EventData(seq, event.type, event.at, event.data)
                for seq, event in enumerate(step.events, step.first_seq)
            ],
            command_results=step.command_results,
            event_seq=step.event_seq,
        )
        # The store may add events of its own (commands refused as the execution finished).
        event_seq: int = await workflow.execute_local_activity(
            CHECKPOINT_ACTIVITY,
            projection,
            result_type=int,
            start_to_close_timeout=STORE_TIMEOUT,
        )
        if event_seq == DIVERGED:
            return False
        self._event_seq = event_seq
        return True

    def _now(self) -> float:
        return workflow.now().timestamp()

    # -- actions ------------------------------------------------------------------

    def _perform(self, action: Action) -> None:
        if isinstance(action, RunTask):
            self._start_task(action)
        elif isinstance(action, CancelTask):
            handle = self._tasks.get(action.task_run_id)
            if handle is not None:
                if action.kill:
                    del self._tasks[action.task_run_id]  # nobody waits for its answer
                    del self._task_attempts[action.task_run_id]
                handle.cancel()
        elif isinstance(action, SetTimer):
            self._clear_timer(action.timer_id)
            self._timers[action.timer_id] = asyncio.create_task(
                self._timer(action.timer_id, action.deadline)
            )
        elif isinstance(action, ClearTimer):
            self._clear_timer(action.timer_id)

    def _start_task(self, action: RunTask) -> None:
        handle = workflow.start_activity(
            RUN_TASK_ACTIVITY,
            TaskInput(
                execution_id=self._execution_id,
                task_run_id=action.task_run_id,
                attempt=action.attempt,
                task_type=action.task_type,
                spec=action.spec,
                traceparent=self._state.get("traceparent"),
            ),
            result_type=TaskOutcome,
            activity_id=f"{action.task_run_id}.{action.attempt}"
            + (f".{self._generation}" if self._generation else ""),
            start_to_close_timeout=TASK_RUN_LIMIT,
            heartbeat_timeout=timedelta(seconds=self._options.heartbeat_timeout),
            retry_policy=WORKER_LOSS_RETRY,
            # A cancelled task reports back only once its body has actually stopped,
            # so `finally` tasks never overlap the work they clean up after.
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary=f"{action.task_type} {action.task_id}",
        )
        self._tasks[action.task_run_id] = handle
        self._task_attempts[action.task_run_id] = action.attempt
        asyncio.create_task(self._await_task(action, handle))  # noqa: RUF006 - tracked in _tasks

    async def _await_task(
        self, action: RunTask, handle: workflow.ActivityHandle[TaskOutcome]
    ) -> None:
        """Hand the task's outcome to the engine, whichever way its activity ends.

        Every task run in ``_tasks`` must report back exactly once: the engine keeps
        it in flight until it does, and a cancelled execution waits for it forever.
        """
        run_id, attempt = action.task_run_id, action.attempt
        result: Event
        try:
            outcome = await handle
        except ActivityError as error:
            if isinstance(error.cause, CancelledError):
                result = TaskCancelled(run_id, attempt, self._now())
            else:
                result = TaskFailed(run_id, attempt, self._now(), str(error.cause or error))
        except asyncio.CancelledError:
            if not handle.cancelled():
                raise  # not the task's cancellation: the worker is evicting this workflow
            # A handle cancelled before it could report ends without an ActivityError. Either
            # the step that started it cancelled it too (a resume and a cancel applied
            # together), and the SDK withdrew the activity before Temporal ever scheduled it,
            # or its outcome arrived as it was cancelled, and the SDK dropped the outcome.
            # Either way the cancel won.
            result = TaskCancelled(run_id, attempt, self._now())
        else:
            if outcome.succeeded:
                result = TaskSucceeded(run_id, attempt, self._now(), outcome.outputs, outcome.logs)
            else:
                result = TaskFailed(run_id, attempt, self._now(), outcome.error, outcome.logs)
        if self._tasks.get(run_id) is not handle:
            return  # killed by terminate, or abandoned: its answer no longer matters
        del self._tasks[run_id]
        del self._task_attempts[run_id]
        self._inbox.append(result)

    async def _timer(self, timer_id: str, deadline: float) -> None:
        delay = deadline - self._now()
        if delay > 0:
            await workflow.sleep(delay, summary=timer_id)
        if self._timers.get(timer_id) is asyncio.current_task():
            del self._timers[timer_id]
            self._inbox.append(TimerFired(timer_id, self._now()))

    def _clear_timer(self, timer_id: str) -> None:
        timer = self._timers.pop(timer_id, None)
        if timer is not None:
            timer.cancel()

    # -- continue-as-new ------------------------------------------------------------

    def _should_continue_as_new(self, actions: list[Action]) -> bool:
        """Long executions start a fresh history between steps, with nothing in flight.

        Tasks already running belong to this run, so a run waits for them to
        report; tasks the last step only asked for are carried over unstarted.
        """
        if self._tasks or self._inbox or any(isinstance(a, CancelTask) for a in actions):
            return False
        info = workflow.info()
        limit = self._options.continue_as_new_after
        return info.is_continue_as_new_suggested() or (
            limit > 0 and info.get_current_history_length() >= limit
        )

    def _carry(self, actions: list[Action]) -> Carried:
        flow_source, flow_revision, secrets, public_url = self._flow
        assert self._next_command_seq is not None
        return Carried(
            state=self._state,
            event_seq=self._event_seq,
            next_command_seq=self._next_command_seq,
            waiting_commands=list(self._waiting.values()),
            flow_source=flow_source,
            flow_revision=flow_revision,
            secrets=secrets,
            public_url=public_url,
            actions=[
                {"kind": "run", **dataclasses.asdict(action)}
                for action in actions
                if isinstance(action, RunTask)
            ],
        )

    def _continue(self, carried: Carried) -> None:
        """Take over from the previous run: same state, same commands, same timers."""
        self._state = rebuild_state(carried.state, carried.state["task_runs"].values())
        self._event_seq = carried.event_seq
        self._flow = (
            carried.flow_source,
            carried.flow_revision,
            carried.secrets,
            carried.public_url,
        )
        self._next_command_seq = carried.next_command_seq
        for message in carried.waiting_commands:
            self._waiting.setdefault(message.seq, message)
        self._waiting = {
            seq: message
            for seq, message in self._waiting.items()
            if seq >= carried.next_command_seq
        }
        for timer_id, timer in self._state["timers"].items():
            self._perform(SetTimer(timer_id, timer["deadline"]))
        for action in carried.actions:
            fields = {key: value for key, value in action.items() if key != "kind"}
            self._start_task(RunTask(**fields))
        self._inbox.extend(self._ready_commands())
