"""Retention: how long ended executions are kept, and the purges that apply it.

The ``retention`` setting maps ``ORG``, ``ORG/NAMESPACE`` (that namespace and
those below it) or ``*`` (every organization) to an ISO-8601 duration; the most
specific key governs an execution, so a broader key's purge leaves alone what a
narrower one says. A server applies the settings every ``purge_interval``
(one server at a time: the one holding the ``retention`` lease, so servers
sharing a database never race each other's deletes); an administrator purges
on demand with ``pausepoint purge`` or ``POST /api/v1/purge``.

The audit trail of an execution is its commands (who paused, resumed, cancelled,
with the request id and trace). ``audit_retention`` keeps an execution that has
any, whole, until that longer duration has passed: purging the commands alone
would leave records no API could show (the audit route checks the execution's
organization, and commands name none).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel

from pausepoint.errors import FieldError, InvalidInput, StoreUnavailable
from pausepoint.flow.durations import format_duration, parse_duration
from pausepoint.runtime.backoff import StoreBackoff
from pausepoint.service.operations import Operation
from pausepoint.service.triggers import LOOKBACK_SECONDS, SCHEDULER
from pausepoint.store.purge import PurgeCounts, PurgeScope

if TYPE_CHECKING:
    from pausepoint.config import Settings
    from pausepoint.service.engine import Engine

log = logging.getLogger("pausepoint.retention")

LEASE = "retention"
EVERY_ORG = "*"


class PurgeReport(BaseModel):
    """What a purge deleted (or, dry, would delete), per kind of record."""

    dry_run: bool
    older_than: str | None  # the duration asked for; None: the retention settings
    executions: int
    events: int
    task_runs: int
    commands: int
    idempotency: int
    links: int
    files: int


def _report(counts: PurgeCounts, dry_run: bool, older_than: str | None) -> PurgeReport:
    return PurgeReport(dry_run=dry_run, older_than=older_than, **counts.as_dict())


def retention_scopes(settings: Settings, now: float) -> list[tuple[str, PurgeScope]]:
    """One scope per ``retention`` key (with the key), each leaving out what a more
    specific key governs."""
    audit = settings.audit_retention
    audit_before = None if audit is None else now - parse_duration(audit)
    keys = {key: _split(key) for key in settings.retention}
    scopes = []
    for key, (org_id, namespace) in keys.items():
        narrower = tuple(
            (other_org, other_ns)
            for other, (other_org, other_ns) in keys.items()
            if other != key and _narrower(org_id, namespace, other_org, other_ns)
        )
        scopes.append(
            (
                key,
                PurgeScope(
                    ended_before=now - parse_duration(settings.retention[key]),
                    org_id=None if org_id == EVERY_ORG else org_id,
                    namespace=namespace,
                    audit_before=audit_before,
                    excluded=narrower,
                ),
            )
        )
    return scopes


def _split(key: str) -> tuple[str, str | None]:
    org_id, _, namespace = key.partition("/")
    return org_id, namespace or None


def _narrower(org: str, namespace: str | None, other_org: str, other_ns: str | None) -> bool:
    """Whether the key ``other_org/other_ns`` is more specific than ``org/namespace``."""
    if org == EVERY_ORG:
        return other_org != EVERY_ORG
    if other_org != org or other_ns is None:
        return False
    return namespace is None or other_ns.startswith(namespace + ".")


async def _unseen_by_flow_triggers(engine: Engine) -> float | None:
    """Executions that ended after this may still fire a Flow trigger (the trigger loop
    has not looked at them yet): a purge leaves them for now. None: nothing waits."""
    if not await engine.store.flow_trigger_rows():
        return None
    cursor = await engine.store.scheduler_cursor(SCHEDULER)
    return None if cursor is None else cursor - LOOKBACK_SECONDS


async def _purge(engine: Engine, scope: PurgeScope, dry_run: bool) -> PurgeCounts:
    unseen = await _unseen_by_flow_triggers(engine)
    if unseen is not None and unseen < scope.ended_before:
        scope = dataclasses.replace(scope, ended_before=unseen)
    return await engine.store.purge_executions(
        scope, dry_run=dry_run, batch=engine.settings.purge_batch
    )


async def apply_retention(engine: Engine, *, dry_run: bool = False) -> PurgeReport:
    """Purge what every ``retention`` setting says has been kept long enough."""
    total = PurgeCounts()
    for key, scope in retention_scopes(engine.settings, engine.clock()):
        counts = await _purge(engine, scope, dry_run)
        if counts.executions:
            log.info(
                "retention %s=%s: %s %d ended executions (%s)",
                key,
                engine.settings.retention[key],
                "would purge" if dry_run else "purged",
                counts.executions,
                ", ".join(
                    f"{name} {n}" for name, n in counts.as_dict().items() if name != "executions"
                ),
            )
        total.add(counts)
    return _report(total, dry_run, None)


async def purge_older_than(
    engine: Engine,
    older_than: str,
    *,
    dry_run: bool = False,
    namespace: str | None = None,
    every_org: bool = False,
) -> PurgeReport:
    """Purge the ended executions of the engine's organization (or every one) that ended
    more than ``older_than`` ago, the audit retention still applying; ``InvalidInput``
    naming ``older_than`` for a duration that is not one."""
    try:
        seconds = parse_duration(older_than)
    except (TypeError, ValueError) as error:
        raise InvalidInput(
            f"older_than: {error}", [FieldError(("body", "older_than"), str(error), "value_error")]
        ) from None
    now = engine.clock()
    audit = engine.settings.audit_retention
    scope = PurgeScope(
        ended_before=now - seconds,
        org_id=None if every_org else engine.org_id,
        namespace=namespace or None,
        audit_before=None if audit is None else now - parse_duration(audit),
    )
    counts = await _purge(engine, scope, dry_run)
    log.info(
        "purge older than %s%s: %s %d ended executions",
        format_duration(seconds),
        f" in {namespace}" if namespace else "",
        "would purge" if dry_run else "purged",
        counts.executions,
    )
    return _report(counts, dry_run, older_than)


async def retention_loop(engine: Engine) -> None:
    """Apply the retention settings every ``purge_interval`` while holding the lease."""
    settings = engine.settings
    owner = engine._shared.owner  # this process, as the holder of leases
    backoff = StoreBackoff("applying retention")
    while True:
        try:
            ttl = settings.purge_interval * 2 + 30
            if await engine.store.take_scheduler_lease(LEASE, owner, ttl, engine.clock()):
                await apply_retention(engine)
        except asyncio.CancelledError:
            raise
        except StoreUnavailable as error:
            backoff.note(error)  # once per outage; the next interval purges what is due
        except Exception:
            log.exception("applying retention failed; trying again next interval")
        else:
            backoff.recovered()
        await asyncio.sleep(settings.purge_interval)


@dataclass(frozen=True, kw_only=True)
class PurgeRequest(Operation[PurgeReport]):
    """Purge the caller's organization's ended executions older than ``older_than``."""

    older_than: str
    dry_run: bool = False
    namespace: str | None = None

    required_role = "admin"
    action = "purging executions"
    result_type = PurgeReport

    @property
    def target(self) -> str:
        return self.namespace or "*"

    async def run(self, engine: Engine) -> PurgeReport:
        return await purge_older_than(
            engine, self.older_than, dry_run=self.dry_run, namespace=self.namespace
        )
