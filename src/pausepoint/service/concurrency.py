"""Flows' concurrency limits: give the slots that free up to the executions waiting.

An execution created while its flow is at its limit with ``behavior: QUEUE``
waits QUEUED on a pause point of kind ``queue`` (see the engine's
``on_started``). A server (an engine started with ``serve=True``) looks every
poll interval at the flows with QUEUED executions and releases the oldest
waiting ones while slots are free. A release is a resume of that pause point
sent through the control plane as ``system:concurrency``: durable before it is
acknowledged, applied once (its idempotency key names the execution), and in
the audit trail like any other command.

Deciding is serialised per flow across processes (``concurrency_lock``: a
short lease in the database), so two servers never give away the same slot.
A flow's ``duration`` ends a slot held too long: who still counts is read from
the executions' start times in the store, so every server agrees on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from pausepoint.errors import Conflict, PausepointError, StoreUnavailable
from pausepoint.runtime.backoff import StoreBackoff
from pausepoint.service.auth import Principal
from pausepoint.service.requests import ResumeRequest

if TYPE_CHECKING:
    from pausepoint.service.engine import Engine

log = logging.getLogger("pausepoint.concurrency")

RELEASER = "system:concurrency"
QUEUE_PAUSE = "queue"


class ReleaseRequest(ResumeRequest):
    """Give a queued execution the concurrency slot that freed up."""

    def payload(self) -> dict[str, object]:
        return {**super().payload(), "release": True}


async def release_waiting(engine: Engine) -> int:
    """Release what the flows' limits allow now; how many executions were released."""
    released = 0
    for org_id, namespace, flow_id in await engine.store.queued_flows():
        scoped = engine.as_org(org_id)
        try:
            flow = await scoped.flow(namespace, flow_id)
        except PausepointError:
            continue  # the flow is gone: its queued executions can only be cancelled
        concurrency = flow.concurrency
        slot_seconds = concurrency.slot_seconds if concurrency else None
        try:
            async with scoped.concurrency_lock(namespace, flow_id):
                slot_since = None if slot_seconds is None else engine.clock() - slot_seconds
                occupancy = await engine.store.occupancy(org_id, namespace, flow_id, slot_since)
                # A flow whose limit was removed since lets every waiting execution go.
                limit = concurrency.limit if concurrency else len(occupancy.waiting)
                free = limit - occupancy.running
                for execution_id in occupancy.waiting[: max(free, 0)]:
                    if occupancy.expired:
                        log.warning(
                            "flow %s.%s: executions %s held their concurrency slot longer than "
                            "its duration (%s); they keep running, and %s takes a slot",
                            namespace,
                            flow_id,
                            ", ".join(occupancy.expired),
                            concurrency.duration if concurrency else None,
                            execution_id,
                        )
                    if await _release(scoped, org_id, execution_id):
                        released += 1
        except Conflict as busy:
            # Another server decides for this flow now (or a killed one's lease has not
            # run out yet): the next poll tries again.
            log.info("%s", busy.message)
    return released


async def _release(engine: Engine, org_id: str, execution_id: str) -> bool:
    principal = Principal(org_id, "operator", RELEASER)
    request = ReleaseRequest(execution_id=execution_id, pause_id=QUEUE_PAUSE, actor=RELEASER)
    try:
        reply = await engine.call(request, principal, idempotency_key=f"release:{execution_id}")
    except PausepointError as error:
        # Not yet waiting on its pause point (it has not started), or cancelled meanwhile.
        log.debug("execution %s not released: %s", execution_id, error.message)
        return False
    return reply.value.applied is not False


async def release_loop(engine: Engine) -> None:
    """Release waiting executions every poll interval, for as long as the server runs."""
    backoff = StoreBackoff("releasing queued executions")
    while True:
        try:
            await release_waiting(engine)
        except asyncio.CancelledError:
            raise
        except StoreUnavailable as error:
            backoff.note(error)  # once per outage; the queue is read again when it is back
        except Exception:
            log.exception("releasing queued executions failed; retrying")
        else:
            backoff.recovered()
        await asyncio.sleep(engine.settings.poll_interval)


async def stop_loop(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
