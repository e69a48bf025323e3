"""Flow triggers: which state changes of which executions start which flows.

A Flow trigger looks at *state changes*: an execution that ends (from the
executions that ended since the scheduler's cursor) and, when its ``states``
name them, one that is queued, starts or resumes (RUNNING) or pauses (read
from the event log of the executions it could be about). Each change is judged
once per trigger: its ``states``, its plain conditions, its ``when``, and — for
a ``dependsOn`` of several flows, ``preconditions`` or a ``MultipleCondition`` —
a window of conditions that must each have been met by some change within the
window.

The window's progress is not kept in memory only: it is *derived* from the
store — the executions that ended and the event logs are the history, and the
trigger's row keeps where its last firing reset the window
(:attr:`TriggerRecord.counts_from`). A process that starts, or takes the
scheduler's lease over, rebuilds a window from that history and reaches the
same decisions; every execution a trigger starts is keyed by the change that
completed it, so deciding twice starts it once.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pausepoint.engine.scheduler import truthy
from pausepoint.errors import NotFound, PausepointError
from pausepoint.flow.model import Flow
from pausepoint.flow.templates import as_text, render
from pausepoint.flow.triggers import (
    EndedExecution,
    ExecutionFilter,
    ExecutionFlowCondition,
    ExecutionNamespaceCondition,
    Filter,
    FlowTrigger,
    MultipleCondition,
    TimeWindow,
    UpstreamFlow,
)
from pausepoint.store.records import ExecutionRecord
from pausepoint.store.triggers import EndedRow, TriggerKey, TriggerRecord

if TYPE_CHECKING:
    from pausepoint.service.triggers import TriggerLoop

log = logging.getLogger("pausepoint.triggers")

# The event that moves an execution to a state before its end, and Kestra's name of it.
LIVE_EVENTS = {
    "workflow.queued": "QUEUED",
    "workflow.started": "RUNNING",
    "workflow.resumed": "RUNNING",
    "workflow.paused": "PAUSED",
    "workflow.cancelling": "KILLING",
}
LIVE_STATES = frozenset(LIVE_EVENTS.values())
# pausepoint's states of an execution that has not ended.
UNENDED = ("QUEUED", "RUNNING", "PAUSING", "PAUSED", "CANCELLING")
ENDED_PAGE = 200
UNENDED_LIMIT = 500  # unended executions looked at per flow (or namespace) and pass
EVENT_PAGE = 1000
_MEMORY = 10_000

Check = Callable[[EndedExecution], bool]


@dataclass(frozen=True)
class Transition:
    """One state change of one execution."""

    org_id: str
    execution: EndedExecution
    at: float
    seq: int | None = None  # the event's; None for the end (from the executions that ended)

    @property
    def fired_by(self) -> str:
        """What a trigger's execution is keyed by: this change."""
        if self.seq is None:
            return f"execution {self.execution.id}"  # the key Flow triggers always used
        return f"execution {self.execution.id} {self.execution.kestra_state} #{self.seq}"

    @property
    def order(self) -> tuple[float, str, int]:
        return (self.at, self.execution.id, self.seq if self.seq is not None else 1 << 62)


@dataclass(frozen=True)
class WindowSpec:
    """A window of conditions: each of ``checks`` met by some change within the window."""

    time_window: TimeWindow
    reset_on_success: bool
    checks: tuple[Check, ...]
    definition: str = ""  # the trigger as written: the checks' order follows it


@dataclass
class Listener:
    record: TriggerRecord
    flow: Flow
    trigger: FlowTrigger
    window: WindowSpec | None

    @property
    def key(self) -> TriggerKey:
        return self.record.key

    def hears(self, change: Transition) -> bool:
        """Whether the change is one this trigger may judge (its organization, not its
        own flow: a flow's own executions never trigger it, or it would loop)."""
        key = self.key
        execution = change.execution
        return change.org_id == key.org_id and (execution.namespace, execution.flow_id) != (
            key.namespace,
            key.flow_id,
        )

    def live_filters(self) -> list[tuple[str | None, str | None]] | None:
        """Which flows' unended executions can matter to it: (namespace, flowId) pairs,
        None for every flow of its organization; [] when no live state is listened to."""
        if not LIVE_STATES.intersection(self.trigger.listened_states):
            return []
        pinned: list[tuple[str | None, str | None]] = []
        for condition in self.trigger.plain_conditions:
            if isinstance(condition, ExecutionFlowCondition):
                return [(condition.namespace, condition.flow_id)]
            if isinstance(condition, ExecutionNamespaceCondition) and not condition.prefix:
                pinned = [(condition.namespace, None)]
        if pinned:
            return pinned
        upstream = upstream_flows(self.trigger)
        filtered = bool(self.trigger.preconditions and self.trigger.preconditions.where)
        if upstream and not filtered and all(flow.namespace for flow in upstream):
            return [(flow.namespace, flow.flow_id) for flow in upstream]
        return None


@dataclass
class WindowMemory:
    """A window's progress as one process knows it (rebuilt from the store when missing)."""

    spec_hash: str
    counts_from: float | None
    bounds: tuple[float, float]
    # The changes in the window that met some check, with which checks each met.
    counted: list[tuple[Transition, tuple[bool, ...]]] = field(default_factory=list)
    # The trigger row's counts_from as read, and as this process wrote it: another value
    # there means someone else reset the window.
    row_values: set[float | None] = field(default_factory=set)
    definition: str = ""  # the definition whose checks the counted ones were judged by


def upstream_flows(trigger: FlowTrigger) -> list[UpstreamFlow]:
    if trigger.preconditions is not None:
        return list(trigger.preconditions.flows)
    return list(trigger.depends_on or [])


def window_spec(trigger: FlowTrigger) -> WindowSpec | None:
    """The trigger's window of conditions, or None when each change is judged alone."""
    definition = trigger.model_dump_json(by_alias=True)
    if trigger.preconditions is not None:
        pre = trigger.preconditions
        checks = [upstream_check(f) for f in pre.flows] + [filter_check(w) for w in pre.where]
        return WindowSpec(pre.time_window, pre.reset_on_success, tuple(checks), definition)
    if trigger.depends_on:
        window = trigger.window
        return WindowSpec(
            window.time_window() if window is not None else TimeWindow(),
            window.fire_once if window is not None else True,
            tuple(upstream_check(flow) for flow in trigger.depends_on),
            definition,
        )
    for condition in trigger.conditions:
        if isinstance(condition, MultipleCondition):
            return WindowSpec(
                TimeWindow(window=condition.window, window_advance=condition.window_advance),
                condition.reset_on_success,
                tuple(c.holds for c in condition.conditions.values()),
                definition,
            )
    return None


def _label_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _rendered_truth(template: str, execution: EndedExecution, where: str) -> bool:
    try:
        return truthy(render(template, execution.variables(), where=where, as_string=True))
    except PausepointError as error:
        log.warning("%s: %s (taken as false)", where, error.message)
        return False


def upstream_check(flow: UpstreamFlow) -> Check:
    """A ``dependsOn`` / ``preconditions.flows`` entry as a test of one state change."""

    def check(execution: EndedExecution) -> bool:
        if flow.namespace is not None and execution.namespace != flow.namespace:
            return False
        if flow.flow_id is not None and execution.flow_id != flow.flow_id:
            return False
        if flow.states is not None and execution.kestra_state not in flow.states:
            return False
        for name, value in (flow.labels or {}).items():
            if execution.labels.get(name) != _label_text(value):
                return False
        return flow.when is None or _rendered_truth(flow.when, execution, "dependsOn when")

    return check


def _field_value(item: Filter, execution: EndedExecution, where: str) -> str | None:
    if item.field == "FLOW_ID":
        return execution.flow_id
    if item.field == "NAMESPACE":
        return execution.namespace
    if item.field == "STATE":
        return execution.kestra_state
    try:
        return as_text(render(item.value or "", execution.variables(), where=where))
    except PausepointError as error:
        log.warning("%s: %s (taken as null)", where, error.message)
        return None


def filter_holds(item: Filter, execution: EndedExecution, where: str) -> bool:
    value = _field_value(item, execution, where)
    match item.type:
        case "EQUAL_TO":
            return value == item.value
        case "NOT_EQUAL_TO":
            return value != item.value
        case "IN":
            return value in (item.values or [])
        case "NOT_IN":
            return value not in (item.values or [])
        case "IS_TRUE":
            return truthy(value)
        case "IS_FALSE":
            return not truthy(value)
        case "IS_NULL":
            return value is None
        case "IS_NOT_NULL":
            return value is not None
        case "STARTS_WITH":
            return value is not None and value.startswith(item.value or "")
        case "ENDS_WITH":
            return value is not None and value.endswith(item.value or "")
        case "REGEX":
            return value is not None and re.fullmatch(item.value or "", value) is not None
        case "CONTAINS":
            return value is not None and (item.value or "") in value
    return False  # pragma: no cover - the model allows no other type


def filter_check(precondition: ExecutionFilter) -> Check:
    """A ``preconditions.where`` entry as a test of one state change."""
    where = f"preconditions.where {precondition.id!r}"

    def check(execution: EndedExecution) -> bool:
        results = (filter_holds(item, execution, where) for item in precondition.filters)
        return all(results) if precondition.operand == "AND" else any(results)

    return check


def _outputs(state: dict[str, Any] | None) -> dict[str, Any]:
    result = (state or {}).get("result")
    return dict(result) if isinstance(result, dict) else {}


def ended_change(row: EndedRow) -> Transition:
    execution = EndedExecution(
        id=row.id,
        namespace=row.namespace,
        flow_id=row.flow_id,
        flow_revision=row.flow_revision,
        status=row.status,
        labels=row.labels,
        outputs=_outputs(row.state),
    )
    return Transition(row.org_id, execution, row.ended_at)


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for name, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(name), dict):
            merged[name] = deep_merge(merged[name], value)
        else:
            merged[name] = value
    return merged


@dataclass(frozen=True)
class _Watched:
    """An execution whose event log may hold state changes a trigger listens to."""

    org_id: str
    id: str
    namespace: str
    flow_id: str
    flow_revision: int
    status: str
    labels: dict[str, str]
    outputs: dict[str, Any]
    event_seq: int | None  # None: unknown (an ended one; read to the end)


class ChangeFeed:
    """State changes since a moment: ends from the executions that ended, and the changes
    before the end from the event logs of the executions the listeners could be about."""

    def __init__(self, loop: TriggerLoop) -> None:
        self.loop = loop
        self._read: OrderedDict[str, int] = OrderedDict()  # event seq read per execution
        self._done: OrderedDict[str, None] = OrderedDict()  # ended, their logs read

    def forget(self) -> None:
        self._read.clear()
        self._done.clear()

    async def since(
        self, after: float, listeners: Iterable[Listener], *, remember: bool = True
    ) -> list[Transition]:
        """Every state change at or after ``after`` the ``listeners`` may hear, in order.

        With ``remember``, event logs are read from where the last call stopped
        (the changes found then are not found again); without, from the start.
        """
        store = self.loop.engine.store
        ended: dict[str, EndedRow] = {}
        start = after
        while True:
            page = await store.ended_since(start, ENDED_PAGE)
            fresh = [row for row in page if row.id not in ended]
            ended.update((row.id, row) for row in page)
            if len(page) < ENDED_PAGE or not fresh:
                break
            start = page[-1].ended_at
        changes = [ended_change(row) for row in ended.values()]
        watched = await self._watched(list(listeners), list(ended.values()))
        for execution in watched:
            changes.extend(await self._live(execution, after, remember=remember))
        changes.sort(key=lambda change: change.order)
        return changes

    async def _watched(self, listeners: list[Listener], ended: list[EndedRow]) -> list[_Watched]:
        filters: dict[str, set[tuple[str | None, str | None]] | None] = {}
        for listener in listeners:
            wanted = listener.live_filters()
            if wanted == []:
                continue
            org = listener.key.org_id
            if wanted is None or filters.get(org, set()) is None:
                filters[org] = None
            else:
                known = filters.setdefault(org, set())
                assert known is not None
                known.update(wanted)
        found: dict[str, _Watched] = {}
        store = self.loop.engine.store
        for org, pairs in filters.items():
            for namespace, flow_id in (
                sorted(pairs, key=str) if pairs is not None else [(None, None)]
            ):
                records = await store.list_executions(
                    org, statuses=UNENDED, namespace=namespace, flow_id=flow_id, limit=UNENDED_LIMIT
                )
                for record in records:
                    found[record.id] = _watched_record(record)
            for row in ended:
                if row.org_id == org and (
                    pairs is None
                    or any(
                        (namespace in (None, row.namespace)) and (flow_id in (None, row.flow_id))
                        for namespace, flow_id in pairs
                    )
                ):
                    found[row.id] = _Watched(
                        row.org_id,
                        row.id,
                        row.namespace,
                        row.flow_id,
                        row.flow_revision,
                        row.status,
                        row.labels,
                        _outputs(row.state),
                        None,
                    )
        return list(found.values())

    async def _live(self, execution: _Watched, after: float, *, remember: bool) -> list[Transition]:
        read = self._read.get(execution.id, 0) if remember else 0
        if remember and execution.id in self._done:
            return []  # it ended and its whole log was read
        if execution.event_seq is not None and execution.event_seq <= read:
            return []  # nothing new in its log
        store = self.loop.engine.store
        changes: list[Transition] = []
        # Past where this process read, every change is new; a log read for the first time
        # holds history too, of which only what happened since ``after`` counts.
        since = after if read == 0 else None
        while True:
            events = await store.read_events(execution.id, after=read, limit=EVENT_PAGE)
            for event in events:
                read = event.seq
                state = LIVE_EVENTS.get(event.type)
                if state is None or (since is not None and event.at < since):
                    continue
                snapshot = EndedExecution(
                    id=execution.id,
                    namespace=execution.namespace,
                    flow_id=execution.flow_id,
                    flow_revision=execution.flow_revision,
                    status=execution.status,
                    state=state,
                    labels=execution.labels,
                    outputs=execution.outputs,
                )
                changes.append(Transition(execution.org_id, snapshot, event.at, event.seq))
            if len(events) < EVENT_PAGE:
                break
        if remember:
            if execution.event_seq is None:  # it ended: its log is complete
                self._read.pop(execution.id, None)
                self._done[execution.id] = None
                if len(self._done) > _MEMORY:
                    self._done.popitem(last=False)
            else:
                self._read[execution.id] = read
                self._read.move_to_end(execution.id)
                if len(self._read) > _MEMORY:
                    self._read.popitem(last=False)
        return changes


def _watched_record(record: ExecutionRecord) -> _Watched:
    return _Watched(
        record.org_id,
        record.id,
        record.namespace,
        record.flow_id,
        record.flow_revision,
        record.status,
        dict(record.labels or {}),
        _outputs(record.state),
        record.event_seq,
    )


class FlowTriggers:
    """The Flow triggers' part of the scheduler (one per :class:`TriggerLoop`)."""

    def __init__(self, loop: TriggerLoop) -> None:
        self.loop = loop
        self.feed = ChangeFeed(loop)
        self._judged: OrderedDict[str, None] = OrderedDict()  # "<trigger>:<change>" seen here
        self._windows: dict[TriggerKey, WindowMemory] = {}

    def forget(self) -> None:
        """Another process may have fired meanwhile: what this one knows is rebuilt."""
        self.feed.forget()
        self._judged.clear()
        self._windows.clear()

    async def listeners(self, records: Iterable[TriggerRecord]) -> list[Listener]:
        """The Flow triggers that may fire: not paused, their flow and trigger enabled."""
        found = []
        for record in records:
            if record.paused:
                self._windows.pop(record.key, None)  # rebuilt from the store once resumed
                continue
            listener = await self.listener(record)
            if listener is not None:
                found.append(listener)
        return found

    async def listener(self, record: TriggerRecord) -> Listener | None:
        key = record.key
        try:
            flow = await self.loop.engine.as_org(key.org_id).flow(key.namespace, key.flow_id)
        except NotFound:
            return None
        trigger = next((t for t in flow.triggers if t.id == key.trigger_id), None)
        if not isinstance(trigger, FlowTrigger) or flow.disabled or trigger.disabled:
            return None
        return Listener(record, flow, trigger, window_spec(trigger))

    async def judge_all(self, listeners: list[Listener], changes: list[Transition]) -> int:
        started = 0
        for change in changes:
            for listener in listeners:
                started += await self.judge(listener, change)
        return started

    async def judge(self, listener: Listener, change: Transition) -> int:
        """Start the listener's flow for this change if it should (at most once)."""
        memo = f"{listener.key}:{change.fired_by}"
        if memo in self._judged or not listener.hears(change):
            return 0
        self._judged[memo] = None
        if len(self._judged) > _MEMORY:
            self._judged.popitem(last=False)
        if not self.passes(listener, change):
            return 0
        if listener.window is None:
            return await self.fire(listener, change, change.execution.outputs)
        return await self._judge_window(listener, listener.window, change)

    def passes(self, listener: Listener, change: Transition) -> bool:
        """``states``, the plain conditions and ``when``: what each change must pass before
        it counts at all."""
        trigger, execution = listener.trigger, change.execution
        if not trigger.fires_for(execution):
            return False
        where = f"trigger '{trigger.id}' when"
        return trigger.when is None or _rendered_truth(trigger.when, execution, where)

    async def _judge_window(self, listener: Listener, spec: WindowSpec, change: Transition) -> int:
        bounds = spec.time_window.bounds(change.at)
        if bounds is None:
            return 0  # outside every window (before a daily start, after a deadline)
        memory = await self._memory(listener, spec, change, bounds)
        if memory.counts_from is not None and change.at <= memory.counts_from:
            return 0  # counted toward a firing already
        met = tuple(check(change.execution) for check in spec.checks)
        if spec.checks and not any(met):
            return 0  # it meets none of the conditions: it fires nothing
        if all(past.fired_by != change.fired_by for past, _ in memory.counted):
            memory.counted.append((change, met))
        if not all(any(checks[i] for _, checks in memory.counted) for i in range(len(met))):
            return 0
        outputs = dict(change.execution.outputs)
        for past, _ in memory.counted:
            execution = past.execution
            if execution.outputs:
                outputs = deep_merge(
                    outputs, {execution.namespace: {execution.flow_id: execution.outputs}}
                )
        started = await self.fire(listener, change, outputs)
        if spec.reset_on_success:
            memory.counts_from = change.at
            memory.counted = []
            memory.row_values.add(change.at)
            await self.loop.engine.store.update_trigger(
                listener.key, next_at=change.at, updated_at=self.loop.engine.clock()
            )
        return started

    async def _memory(
        self,
        listener: Listener,
        spec: WindowSpec,
        change: Transition,
        bounds: tuple[float, float],
    ) -> WindowMemory:
        record = listener.record
        memory = self._windows.get(listener.key)
        sliding = spec.time_window.type == "SLIDING_WINDOW"
        if (
            memory is not None
            and memory.spec_hash == record.spec_hash
            and record.counts_from in memory.row_values
            and (sliding or memory.bounds == bounds)
        ):
            if sliding:
                memory.counted = [(c, met) for c, met in memory.counted if c.at >= bounds[0]]
                memory.bounds = bounds
            if memory.definition != spec.definition:
                # The same definition, saved again (its dependencies reordered, say).
                memory.counted = [
                    (past, met)
                    for past, _ in memory.counted
                    if any(met := tuple(check(past.execution) for check in spec.checks))
                ]
                memory.definition = spec.definition
            return memory
        counts_from = record.counts_from
        if memory is not None and memory.spec_hash == record.spec_hash:
            counts_from = max(
                (at for at in (memory.counts_from, counts_from) if at is not None), default=None
            )
        start = bounds[0] if counts_from is None else max(bounds[0], counts_from)
        history = await self.feed.since(start, [listener], remember=False)
        counted = []
        for past in history:
            if (
                past.order < change.order
                and past.at >= bounds[0]
                and (counts_from is None or past.at > counts_from)
                and listener.hears(past)
                and self.passes(listener, past)
            ):
                met = tuple(check(past.execution) for check in spec.checks)
                if any(met):
                    counted.append((past, met))
        memory = WindowMemory(
            record.spec_hash,
            counts_from,
            bounds,
            counted,
            {record.counts_from, counts_from},
            spec.definition,
        )
        self._windows[listener.key] = memory
        return memory

    async def fire(self, listener: Listener, change: Transition, outputs: dict[str, Any]) -> int:
        execution = change.execution
        variables = {
            "executionId": execution.id,
            "namespace": execution.namespace,
            "flowId": execution.flow_id,
            "flowRevision": execution.flow_revision,
            "state": execution.kestra_state,
            "executionLabels": dict(execution.labels),
            "outputs": outputs,
        }
        return await self.loop.fire(
            listener.key,
            listener.flow,
            dict(listener.trigger.inputs),
            {},
            variables,
            fired_by=change.fired_by,
        )
