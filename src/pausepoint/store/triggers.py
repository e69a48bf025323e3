"""Triggers' state, the scheduler's lease and the cursor over ended executions.

A schedule's row holds the next tick it has not fired (``next_at``): firing a
tick and moving ``next_at`` past it are separate steps, so a crash in
between fires the tick again — the execution it starts is keyed by the tick,
so the second start finds the first execution instead of making another.
Moving ``next_at`` is conditional on the value read, so two processes never
both advance it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from pausepoint.flow.model import Flow
from pausepoint.flow.triggers import FlowTrigger, ScheduleTrigger, aware
from pausepoint.store import schema
from pausepoint.store.checkpoints import TERMINAL
from pausepoint.store.database import Database


@dataclass(frozen=True)
class TriggerKey:
    org_id: str
    namespace: str
    flow_id: str
    trigger_id: str


@dataclass(frozen=True)
class TriggerRecord:
    key: TriggerKey
    type: str
    spec_hash: str
    next_at: float | None
    backfill_at: float | None
    backfill_end: float | None
    paused: bool
    paused_at: float | None
    catch_up: str | None
    last_fired_at: float | None
    last_execution_id: str | None
    last_error: str | None
    updated_at: float

    @property
    def counts_from(self) -> float | None:
        """A Flow trigger's window: the state changes at or before this moment no longer
        count toward its next firing (its last reset, or when it was saved).

        Kept in ``next_at``, which is a schedule's next tick and unused by Flow triggers."""
        return self.next_at if self.type == "flow" else None


@dataclass(frozen=True)
class TriggerSpec:
    """What saving a flow says about one of its triggers."""

    trigger_id: str
    type: str
    spec_hash: str
    next_at: float | None
    backfill_at: float | None
    backfill_end: float | None


@dataclass(frozen=True)
class EndedRow:
    id: str
    org_id: str
    namespace: str
    flow_id: str
    flow_revision: int
    status: str
    ended_at: float
    state: dict[str, Any]
    labels: dict[str, str]


def trigger_specs(flow: Flow, now: float) -> list[TriggerSpec]:
    """What the store keeps for each of ``flow``'s triggers when the flow is saved at ``now``."""
    specs: list[TriggerSpec] = []
    for trigger in flow.triggers:
        if isinstance(trigger, FlowTrigger):
            text = json.dumps(trigger.canonical(), sort_keys=True)
        else:
            text = trigger.model_dump_json(by_alias=True)
        digest = hashlib.sha256(text.encode()).hexdigest()
        next_at = backfill_at = backfill_end = None
        if isinstance(trigger, FlowTrigger) and trigger.has_window:
            next_at = now  # a new or changed window counts what happens from now on
        if isinstance(trigger, ScheduleTrigger):
            next_at = trigger.next_tick(now)
            if trigger.backfill is not None:
                start = aware(trigger.backfill.start).timestamp()
                end = aware(trigger.backfill.end).timestamp() if trigger.backfill.end else now
                first = trigger.next_tick(start - 0.001)
                if first <= end:
                    backfill_at, backfill_end = first, min(end, now)
        specs.append(
            TriggerSpec(trigger.id, trigger.type, digest, next_at, backfill_at, backfill_end)
        )
    return specs


def _record(row: Any) -> TriggerRecord:
    return TriggerRecord(
        key=TriggerKey(row.org_id, row.namespace, row.flow_id, row.trigger_id),
        type=row.type,
        spec_hash=row.spec_hash,
        next_at=row.next_at,
        backfill_at=row.backfill_at,
        backfill_end=row.backfill_end,
        paused=bool(row.paused),
        paused_at=row.paused_at,
        catch_up=row.catch_up,
        last_fired_at=row.last_fired_at,
        last_execution_id=row.last_execution_id,
        last_error=row.last_error,
        updated_at=row.updated_at,
    )


def _where(key: TriggerKey) -> Any:
    t = schema.triggers
    return sa.and_(
        t.c.org_id == key.org_id,
        t.c.namespace == key.namespace,
        t.c.flow_id == key.flow_id,
        t.c.trigger_id == key.trigger_id,
    )


class Triggers:
    """Statements on triggers, run by ``SqlStore`` through :meth:`Database.run`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def sync(
        self, org_id: str, namespace: str, flow_id: str, specs: list[TriggerSpec], now: float
    ) -> None:
        """Make the flow's trigger rows match ``specs``: new ones added, gone ones removed,
        changed ones started again; unchanged ones keep their state (paused, next tick)."""
        t = schema.triggers
        mine = sa.and_(t.c.org_id == org_id, t.c.namespace == namespace, t.c.flow_id == flow_id)
        with self._db.write() as conn:
            existing = {
                row.trigger_id: row.spec_hash
                for row in conn.execute(sa.select(t.c.trigger_id, t.c.spec_hash).where(mine))
            }
            wanted = {spec.trigger_id for spec in specs}
            gone = [trigger_id for trigger_id in existing if trigger_id not in wanted]
            if gone:
                conn.execute(t.delete().where(mine, t.c.trigger_id.in_(gone)))
            for spec in specs:
                if existing.get(spec.trigger_id) == spec.spec_hash:
                    continue
                values = {
                    "type": spec.type,
                    "spec_hash": spec.spec_hash,
                    "next_at": spec.next_at,
                    "backfill_at": spec.backfill_at,
                    "backfill_end": spec.backfill_end,
                    "updated_at": now,
                }
                if spec.trigger_id in existing:
                    key = TriggerKey(org_id, namespace, flow_id, spec.trigger_id)
                    conn.execute(t.update().where(_where(key)).values(**values))
                else:
                    conn.execute(
                        t.insert().values(
                            org_id=org_id,
                            namespace=namespace,
                            flow_id=flow_id,
                            trigger_id=spec.trigger_id,
                            paused=False,
                            **values,
                        )
                    )

    def remove_flow(self, org_id: str, namespace: str, flow_id: str) -> None:
        t = schema.triggers
        with self._db.write() as conn:
            conn.execute(
                t.delete().where(
                    t.c.org_id == org_id, t.c.namespace == namespace, t.c.flow_id == flow_id
                )
            )

    def of_flow(self, org_id: str, namespace: str, flow_id: str) -> list[TriggerRecord]:
        t = schema.triggers
        query = (
            sa.select(t)
            .where(t.c.org_id == org_id, t.c.namespace == namespace, t.c.flow_id == flow_id)
            .order_by(t.c.trigger_id)
        )
        with self._db.read() as conn:
            return [_record(row) for row in conn.execute(query)]

    def of_type(self, type_: str) -> list[TriggerRecord]:
        t = schema.triggers
        with self._db.read() as conn:
            return [_record(row) for row in conn.execute(sa.select(t).where(t.c.type == type_))]

    def get(self, key: TriggerKey) -> TriggerRecord | None:
        with self._db.read() as conn:
            row = conn.execute(sa.select(schema.triggers).where(_where(key))).first()
        return _record(row) if row is not None else None

    def due(self, now: float, limit: int) -> list[TriggerRecord]:
        """Schedules with a tick (or a backfill tick) due and not paused, soonest first."""
        t = schema.triggers
        query = (
            sa.select(t)
            .where(
                t.c.type == "schedule",
                t.c.paused == sa.false(),
                sa.or_(t.c.next_at <= now, t.c.backfill_at <= now),
            )
            .order_by(t.c.next_at)
            .limit(limit)
        )
        with self._db.read() as conn:
            return [_record(row) for row in conn.execute(query)]

    def advance(self, record: TriggerRecord, **values: Any) -> bool:
        """Update a row if it is still as ``record`` read it (no other process moved it)."""
        t = schema.triggers
        with self._db.write() as conn:
            result = conn.execute(
                t.update()
                .where(
                    _where(record.key),
                    t.c.next_at.is_(None)
                    if record.next_at is None
                    else t.c.next_at == record.next_at,
                    t.c.backfill_at.is_(None)
                    if record.backfill_at is None
                    else t.c.backfill_at == record.backfill_at,
                    t.c.paused == record.paused,
                )
                .values(**values)
            )
            return bool(result.rowcount)

    def update(self, key: TriggerKey, **values: Any) -> bool:
        with self._db.write() as conn:
            result = conn.execute(schema.triggers.update().where(_where(key)).values(**values))
            return bool(result.rowcount)

    # -- the scheduler's lease and cursor ------------------------------------------------

    def take_lease(self, name: str, owner: str, ttl: float, now: float) -> bool:
        """Hold (or keep) the lease ``name`` for ``ttl`` seconds; False when another holds it."""
        s = schema.scheduler
        with self._db.write() as conn:
            taken = conn.execute(
                s.update()
                .where(s.c.name == name, sa.or_(s.c.owner == owner, s.c.expires_at < now))
                .values(owner=owner, expires_at=now + ttl)
            ).rowcount
            if taken:
                return True
            if conn.execute(sa.select(s.c.name).where(s.c.name == name)).first() is not None:
                return False
            conn.execute(s.insert().values(name=name, owner=owner, expires_at=now + ttl))
            return True

    def release_lease(self, name: str, owner: str) -> None:
        s = schema.scheduler
        with self._db.write() as conn:
            conn.execute(
                s.update().where(s.c.name == name, s.c.owner == owner).values(expires_at=0.0)
            )

    def cursor(self, name: str) -> float | None:
        s = schema.scheduler
        with self._db.read() as conn:
            row = conn.execute(sa.select(s.c.cursor_at).where(s.c.name == name)).first()
        return None if row is None else row[0]

    def set_cursor(self, name: str, owner: str, cursor_at: float) -> None:
        s = schema.scheduler
        with self._db.write() as conn:
            conn.execute(
                s.update().where(s.c.name == name, s.c.owner == owner).values(cursor_at=cursor_at)
            )

    def ended_since(self, after: float, limit: int) -> list[EndedRow]:
        """Executions that ended at or after ``after``, oldest end first."""
        e = schema.executions
        query = (
            sa.select(
                e.c.id,
                e.c.org_id,
                e.c.namespace,
                e.c.flow_id,
                e.c.flow_revision,
                e.c.status,
                e.c.ended_at,
                e.c.state,
                e.c.labels,
            )
            .where(e.c.ended_at >= after, e.c.status.in_(list(TERMINAL)))
            .order_by(e.c.ended_at, e.c.id)
            .limit(limit)
        )
        loads = self._db.loads
        with self._db.read() as conn:
            rows = conn.execute(query).all()
        return [
            EndedRow(
                *row[:7],
                state=loads(row[7]) if isinstance(row[7], str | bytes) else row[7],
                labels=dict((loads(row[8]) if isinstance(row[8], str | bytes) else row[8]) or {}),
            )
            for row in rows
        ]
