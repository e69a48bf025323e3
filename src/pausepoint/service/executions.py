"""Executions: start them, list them, and read them as public views."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from pausepoint.engine.control import on_resume_specs, view_of
from pausepoint.engine.flowindex import FlowIndex
from pausepoint.engine.interpreter import EngineEnv, iso, new_state
from pausepoint.engine.model import ExecutionStatus
from pausepoint.engine.state import (
    ANSWERED_KINDS,
    Admission,
    RetryOrigin,
    hold_before_start,
    redact_secret_inputs,
)
from pausepoint.errors import Conflict, FieldError, InvalidInput, NotFound
from pausepoint.flow import coerce_inputs, inputs_json_schema
from pausepoint.flow.model import Concurrency
from pausepoint.models import (
    ChildView,
    ContextMessage,
    DescendantPausePoint,
    ExecutionView,
    PausePointView,
    StateView,
)
from pausepoint.runtime.actor import core_state
from pausepoint.runtime.base import NewExecution
from pausepoint.service.approvals import approval_request_view
from pausepoint.service.core import EXECUTION_FLOW_CACHE, FlowKey, iso_or_none, keyed_id, new_id
from pausepoint.service.files import FilesLayer
from pausepoint.service.operations import SubflowParent
from pausepoint.service.subflows import cascader
from pausepoint.service.views import first_failure, masker_for, shown_run, task_run_view
from pausepoint.store.links import ChildRow, ExecutionLink
from pausepoint.store.records import ExecutionRecord

CONCURRENCY_LEASE_SECONDS = 30.0
_TREE_LIMIT = 100_000  # executions read to show one tree
# States of a descendant that is still moving (not paused, not ended).
_BUSY = frozenset({"QUEUED", "RUNNING", "PAUSING", "CANCELLING"})
CONCURRENCY_LEASE_POLL = 0.02


@dataclass(frozen=True)
class _Start:
    """What a start asks for, besides the flow."""

    inputs: dict[str, Any]
    labels: dict[str, str] | None
    idempotency_key: str | None
    traceparent: str | None
    trigger: dict[str, Any] | None
    parent: SubflowParent | None
    started_by: str | None
    origin: RetryOrigin | None = None


class ExecutionsLayer(FilesLayer):
    # -- executions --------------------------------------------------------------

    async def start_execution(
        self,
        namespace: str,
        flow_id: str,
        *,
        inputs: dict[str, Any] | None = None,
        labels: dict[str, str] | None = None,
        revision: int | None = None,
        idempotency_key: str | None = None,
        traceparent: str | None = None,
        trigger: dict[str, Any] | None = None,
        parent: SubflowParent | None = None,
        started_by: str | None = None,
        origin: RetryOrigin | None = None,
    ) -> ExecutionView:
        """Create an execution (inputs validated and coerced) and start running it here.

        With ``idempotency_key``, the execution's id is derived from it: starting
        again with the same key (say, a client retrying after its server died
        mid-request) finds the execution the first start created. ``traceparent``
        (W3C trace context) makes the execution part of that trace: its events
        carry it and its task runs' spans are in it. ``trigger`` is what a
        trigger that starts it says (its templates read it as ``trigger.*``).

        A flow with a ``concurrency`` limit reached: ``QUEUE`` creates it held
        (QUEUED until a slot frees up, oldest first), ``CANCEL`` and ``FAIL``
        create it ended so.
        """
        revision, index = await self._flow_index(namespace, flow_id, revision)
        flow = index.flow
        if flow.disabled:
            raise Conflict(f"flow {namespace}.{flow_id} is disabled: enable it to start executions")
        values = coerce_inputs(flow.inputs, inputs or {}, loc_prefix=("inputs",))
        start = _Start(
            values, labels, idempotency_key, traceparent, trigger, parent, started_by, origin
        )
        if flow.concurrency is None:
            return await self._create_execution(index, revision, start, None)
        async with self.concurrency_lock(flow.namespace, flow.id):
            admission = await self._admission(flow.namespace, flow.id, flow.concurrency)
            return await self._create_execution(index, revision, start, admission)

    async def _admission(
        self, namespace: str, flow_id: str, concurrency: Concurrency
    ) -> Admission | None:
        """What a new execution does, decided under the flow's concurrency lock.

        ``None``: it runs. At the limit, ``behavior`` says; with QUEUE and a
        ``queueSize``, a queue already that long creates it CANCELLED instead.
        """
        slot_seconds = concurrency.slot_seconds
        slot_since = None if slot_seconds is None else self.clock() - slot_seconds
        occupancy = await self.store.occupancy(self.org_id, namespace, flow_id, slot_since)
        limit = concurrency.limit
        if occupancy.running + len(occupancy.waiting) < limit:
            return None
        reason = f"flow {namespace}.{flow_id} is at its concurrency limit ({limit} at once)"
        queue_size = concurrency.queue_size
        queue_full = queue_size is not None and len(occupancy.waiting) >= queue_size
        if concurrency.behavior == "QUEUE" and queue_full:
            reason += f" and its queue is full ({queue_size} waiting at most)"
            return {"behavior": "CANCEL", "reason": reason}
        return {"behavior": concurrency.behavior, "reason": reason}

    @contextlib.asynccontextmanager
    async def concurrency_lock(self, namespace: str, flow_id: str) -> AsyncIterator[None]:
        """Held while deciding who gets a slot of a flow's concurrency limit, across processes.

        An in-process lock, then a short lease in the database that every
        server deciding for the same flow takes: two servers never count the
        same free slot. A lease left by a dead process runs out in
        ``CONCURRENCY_LEASE_SECONDS``.
        """
        key = (self.org_id, namespace, flow_id)
        digest = hashlib.sha256("\0".join(key).encode()).hexdigest()[:40]
        name = f"concurrency:{digest}"
        async with self._shared.concurrency_locks.setdefault(key, asyncio.Lock()):
            deadline = self.clock() + self.settings.command_wait_timeout
            while not await self.store.take_scheduler_lease(
                name, self._shared.owner, CONCURRENCY_LEASE_SECONDS, self.clock()
            ):
                if self.clock() > deadline:
                    raise Conflict(
                        f"flow {namespace}.{flow_id}: another server is deciding its concurrency "
                        "slots; try again"
                    )
                await asyncio.sleep(CONCURRENCY_LEASE_POLL)
            try:
                yield
            finally:
                await self.store.release_scheduler_lease(name, self._shared.owner)

    async def _create_execution(
        self, index: FlowIndex, revision: int, start: _Start, admission: Admission | None
    ) -> ExecutionView:
        flow = index.flow
        namespace, flow_id = flow.namespace, flow.id
        values, labels, idempotency_key = start.inputs, start.labels, start.idempotency_key
        traceparent = start.traceparent
        now = self.clock()
        execution_id = keyed_id(self.org_id, idempotency_key) if idempotency_key else new_id()
        parent = start.parent
        inherited = parent.inherited_labels if parent is not None else {}
        all_labels = {**inherited, **flow.labels, **(labels or {})}
        state = new_state(
            execution_id,
            index,
            inputs=values,
            labels=all_labels,
            at=now,
            traceparent=traceparent,
            started_by=start.started_by,
        )
        if admission is not None:
            state["admission"] = admission
        if parent is not None and parent.hold is not None and parent.waits:
            # Its parent is held: it waits, paused before its first task, for the parent.
            hold_before_start(
                state,
                f"cascade-{parent.hold}",
                by=cascader(parent.execution_id),
                reason=f"parent execution {parent.execution_id} is paused",
                at=now,
            )
        if start.trigger is not None:
            state["trigger"] = start.trigger
        if start.origin is not None:
            state["origin"] = start.origin
        execution = ExecutionRecord(
            id=execution_id,
            org_id=self.org_id,
            namespace=flow.namespace,
            flow_id=flow.id,
            flow_revision=revision,
            status=state["status"],
            state=core_state(state),
            labels=all_labels,
            created_at=now,
            updated_at=now,
            started_at=None,
            ended_at=None,
            event_seq=0,
            lease_owner=None,  # the runtime's to take
            lease_expires_at=None,
            commands_version=0,
        )
        if parent is not None:
            await self.store.link_child(
                ExecutionLink(
                    child_id=execution_id,
                    org_id=self.org_id,
                    parent_id=parent.execution_id,
                    parent_task_run_id=parent.task_run_id,
                    root_id=parent.root_id,
                    waits=parent.waits,
                    notified_at=None,
                    created_at=now,
                )
            )
        env = EngineEnv(index, await self._secrets_for(self.org_id), self.settings.public_url)
        if not await self.runtime.submit(NewExecution(execution, state, env)):
            return await self.execution(execution_id)
        self._remember_flow(execution_id, (self.org_id, namespace, flow_id, revision))
        return self._view(execution, [], env)

    async def _record(self, execution_id: str) -> ExecutionRecord:
        record = await self.store.get_execution(execution_id)
        if record is None or record.org_id != self.org_id:
            raise NotFound(f"execution {execution_id} not found")
        return record

    async def execution(self, execution_id: str) -> ExecutionView:
        """Everything about one execution, as of its last checkpoint."""
        return await self._execution_of(await self._record(execution_id))

    async def _execution_of(self, record: ExecutionRecord) -> ExecutionView:
        runs = await self.store.load_task_runs(record.id)
        view = self._view(record, runs, await self._env_for(record))
        link = await self.store.execution_link(record.id)
        children = await self.store.children(record.id)
        below = await self._descendants(record, link.root_id if link else record.id, children)
        return view.model_copy(
            update={
                "descendant_pause_points": [
                    point for descendant in below for point in await self._open_points(descendant)
                ],
                "busy_descendants": [
                    descendant.id for descendant in below if descendant.status in _BUSY
                ],
                "parent_id": link.parent_id if link else None,
                "parent_task_run_id": link.parent_task_run_id if link else None,
                "root_id": link.root_id if link else record.id,
                "children": [
                    ChildView(
                        id=child.link.child_id,
                        namespace=child.namespace,
                        flow_id=child.flow_id,
                        state=child.status,
                        task_run_id=child.link.parent_task_run_id,
                        waits=child.link.waits,
                        cascade_error=child.link.cascade_error,
                    )
                    for child in children
                ],
            }
        )

    async def _descendants(
        self, record: ExecutionRecord, root_id: str, children: Sequence[ChildRow]
    ) -> list[ExecutionRecord]:
        """Every execution below ``record`` in its tree, oldest first (two reads)."""
        if not children:
            return []
        below_of: dict[str, list[str]] = {}
        for link in await self.store.tree_links(root_id):
            below_of.setdefault(link.parent_id, []).append(link.child_id)
        wanted: set[str] = set()
        frontier = [record.id]
        while frontier:
            found = [child for parent in frontier for child in below_of.get(parent, ())]
            wanted.update(found)
            frontier = found
        tree = await self.store.list_executions(self.org_id, root_id=root_id, limit=_TREE_LIMIT)
        return sorted((r for r in tree if r.id in wanted), key=lambda r: (r.created_at, r.id))

    async def _open_points(self, record: ExecutionRecord) -> list[DescendantPausePoint]:
        """A descendant's pause points that a person answers (Pause tasks, approvals)."""
        if not any(p["kind"] in ANSWERED_KINDS for p in record.state["pauses"].values()):
            return []
        env = await self._env_for(record)
        return [
            DescendantPausePoint(
                execution_id=record.id,
                namespace=record.namespace,
                flow_id=record.flow_id,
                pause_point=point,
            )
            for point in self._pause_points(record.state, env)
            if point.kind in ANSWERED_KINDS
        ]

    def _view(
        self, record: ExecutionRecord, runs: list[dict[str, Any]], env: EngineEnv
    ) -> ExecutionView:
        state = record.state
        runs.sort(key=lambda run: int(run["id"][1:]))
        mask = masker_for(state, env)
        # Built from the engine's own checkpoint, every part already a model: validating
        # it again cost a fifth of awaiting an execution (``Engine.wait`` returns a view).
        return ExecutionView.model_construct(
            id=record.id,
            namespace=record.namespace,
            flow_id=record.flow_id,
            flow_revision=record.flow_revision,
            state=record.status,
            inputs=redact_secret_inputs(env.index.flow.inputs, state["inputs"]),
            labels=record.labels,
            created_at=iso(record.created_at),
            started_at=iso_or_none(record.started_at),
            ended_at=iso_or_none(record.ended_at),
            checkpoint=state.get("checkpoint"),
            pause_reason=state.get("pause_reason"),
            pause_points=self._pause_points(state, env),
            task_runs=[task_run_view(shown_run(run, env, mask)) for run in runs],
            context=[ContextMessage(**m) for m in state["context"]["messages"]],
            outputs=state.get("result"),
            error=(state.get("error") or {}).get("message") or first_failure(runs),
            trigger=state.get("trigger") or None,
            retried_by=state.get("retried_by"),
            original_id=(state.get("origin") or {}).get("id"),
            attempt_number=(state.get("origin") or {}).get("attempt", 1),
            # Given, not defaulted: model_construct inspects a default factory's signature.
            children=[],
            descendant_pause_points=[],
            busy_descendants=[],
        )

    def _pause_points(self, state: dict[str, Any], env: EngineEnv) -> list[PausePointView]:
        points = []
        view = view_of(state)
        for pause_id, pause in state["pauses"].items():
            specs = on_resume_specs(env.index, view.pauses[pause_id])
            points.append(
                PausePointView(
                    id=pause_id,
                    kind=pause["kind"],
                    task_id=pause.get("task_id"),
                    task_run_id=pause.get("task_run_id"),
                    opened_at=iso(pause["opened_at"]),
                    deadline=iso_or_none(pause.get("deadline")),
                    reason=pause.get("reason"),
                    by=pause.get("by"),
                    on_resume_schema=(
                        inputs_json_schema(specs)
                        if pause["kind"] not in ("manual", "subflow")
                        else None
                    ),
                    child_execution_id=pause.get("child"),
                    approval=(
                        approval_request_view(env.index, pause)
                        if pause["kind"] in ("decision", "approval")
                        else None
                    ),
                )
            )
        return points

    async def state(self, execution_id: str) -> StateView:
        record = await self._record(execution_id)
        env = await self._env_for(record)
        return StateView(
            execution_id=record.id,
            state=record.status,
            checkpoint=record.state.get("checkpoint"),
            pause_reason=record.state.get("pause_reason"),
            pause_points=self._pause_points(record.state, env),
        )

    async def list_executions(
        self,
        *,
        states: Sequence[str] = (),
        namespace: str | None = None,
        flow_id: str | None = None,
        labels: dict[str, str] | None = None,
        limit: int = 50,
        before: tuple[float, str] | None = None,
        parent_id: str | None = None,
        root_id: str | None = None,
    ) -> list[ExecutionRecord]:
        unknown = [s for s in states if s not in ExecutionStatus.__members__]
        if unknown:
            raise InvalidInput(
                f"unknown state {unknown[0]!r}; states are {', '.join(ExecutionStatus)}",
                [FieldError(("query", "state"), f"unknown state {unknown[0]!r}", "enum")],
            )
        return await self.store.list_executions(
            self.org_id,
            statuses=states,
            namespace=namespace,
            flow_id=flow_id,
            labels=labels,
            limit=limit,
            before=before,
            parent_id=parent_id,
            root_id=root_id,
        )

    def _remember_flow(self, execution_id: str, key: FlowKey) -> None:
        """Note which flow revision an execution runs (an entry costs about 120 bytes)."""
        flows = self._shared.execution_flows
        flows[execution_id] = self._shared.flow_keys.setdefault(key, key)
        if len(flows) > EXECUTION_FLOW_CACHE:
            del flows[next(iter(flows))]
