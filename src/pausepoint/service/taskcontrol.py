"""Control actions taken by tasks (Kestra's Resume task), through the control plane.

A task acts as its flow (``flow:<namespace>.<id>``, operator role) in its
execution's organization: roles, tenancy, idempotency and the audit trail
hold exactly as for an API call. Another organization's execution is "not
found", as it is over HTTP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pausepoint.errors import PausepointError, TaskError
from pausepoint.service.auth import Principal
from pausepoint.service.requests import ResumeRequest
from pausepoint.tasks.context import LeafContext

if TYPE_CHECKING:
    from pausepoint.service.engine import Engine


class TaskResumer:
    """The :class:`~pausepoint.tasks.context.TaskControl` of an engine's runtime."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def resume(
        self,
        caller: LeafContext,
        execution_id: str,
        *,
        namespace: str | None,
        flow_id: str | None,
        inputs: dict[str, Any],
    ) -> dict[str, Any]:
        store = self._engine.store
        own = await store.get_execution(caller.execution_id)
        if own is None:
            raise TaskError(f"resume task: its own execution {caller.execution_id} is gone")
        target = await store.get_execution(execution_id)
        if target is None or target.org_id != own.org_id:
            raise TaskError(f"resume task: execution {execution_id} not found")
        expected = (namespace or target.namespace, flow_id or target.flow_id)
        if expected != (target.namespace, target.flow_id):
            raise TaskError(
                f"resume task: execution {execution_id} is an execution of "
                f"{target.namespace}.{target.flow_id}, not of {expected[0]}.{expected[1]}"
            )
        principal = Principal(own.org_id, "operator", f"flow:{own.namespace}.{own.flow_id}")
        request = ResumeRequest(execution_id=execution_id, inputs=inputs, actor=principal.subject)
        try:
            reply = await self._engine.call(
                request, principal, idempotency_key=f"resume-task:{caller.task_run_id}"
            )
        except PausepointError as error:
            raise TaskError(f"resume task: {error.message}") from None
        result = reply.value
        if result.applied is False:
            raise TaskError(f"resume task: {result.message}")
        return {"executionId": execution_id, "state": result.state}
