"""Control actions taken by tasks (Kestra's Resume and Subflow), through the control plane,
and the storage tasks reach: files, an execution's logs, the key-value store.

A task acts as its flow (``flow:<namespace>.<id>``, operator role) in its
execution's organization: roles, tenancy, idempotency and the audit trail
hold exactly as for an API call. Another organization's execution is "not
found", as it is over HTTP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pausepoint.engine.state import iso
from pausepoint.errors import PausepointError, TaskError
from pausepoint.service.auth import Principal
from pausepoint.service.links import ACTIONS
from pausepoint.service.operations import (
    PauseTriggerRequest,
    ResumeTriggerRequest,
    StartRequest,
    SubflowParent,
)
from pausepoint.service.requests import ResumeRequest
from pausepoint.service.subflows import holding_pauses
from pausepoint.storage import MAX_FILE_BYTES, StorageError, check_uri, task_file_uri
from pausepoint.store.logs import LogFilter
from pausepoint.store.records import ExecutionRecord
from pausepoint.tasks.context import LeafContext

if TYPE_CHECKING:
    from pausepoint.service.engine import Engine

REPLAY_LABEL = "system.replay"
"""The label Kestra gives an execution that replays another (a retry by a new execution)."""


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
        own = await self._own(caller, "resume")
        target = await store.get_execution(execution_id)
        if target is None or target.org_id != own.org_id:
            raise TaskError(f"resume task: execution {execution_id} not found")
        expected = (namespace or target.namespace, flow_id or target.flow_id)
        if expected != (target.namespace, target.flow_id):
            raise TaskError(
                f"resume task: execution {execution_id} is an execution of "
                f"{target.namespace}.{target.flow_id}, not of {expected[0]}.{expected[1]}"
            )
        principal = _as_flow(own)
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

    async def start_subflow(
        self,
        caller: LeafContext,
        *,
        namespace: str,
        flow_id: str,
        revision: int | None,
        inputs: dict[str, Any],
        labels: dict[str, str],
        inherit_labels: bool,
        wait: bool,
        iteration: int | None = None,
    ) -> dict[str, Any]:
        own = await self._own(caller, "subflow")
        link = await self._engine.store.execution_link(own.id)
        policy = (await self._engine._env_for(own)).index.flow.cascade
        parent = SubflowParent(
            execution_id=own.id,
            # The context names the run as Kestra's taskrun.id does: "<execution>/<run>".
            task_run_id=caller.task_run_id.rpartition("/")[2],
            root_id=link.root_id if link is not None else own.id,
            waits=wait,
            hold=next(iter(holding_pauses(own.state, policy.pause)), None),
            inherited_labels=dict(own.labels) if inherit_labels else {},
        )
        # Kestra's trigger variables of a subflow's execution.
        trigger: dict[str, Any] = {
            "type": "io.kestra.plugin.core.flow.Subflow",
            "executionId": own.id,
            "namespace": own.namespace,
            "flowId": own.flow_id,
            "flowRevision": own.flow_revision,
        }
        if iteration is not None:
            trigger["type"] = "io.kestra.plugin.core.flow.ForEachItem"
            trigger["taskRunIteration"] = iteration
        request = StartRequest(
            namespace=namespace,
            flow_id=flow_id,
            inputs=inputs,
            labels=labels,
            revision=revision,
            trigger=trigger,
            parent=parent,
        )
        try:
            # The key names the task run: a retry or a restart finds the child it started.
            reply = await self._engine.call(
                request, _as_flow(own), idempotency_key=f"subflow:{own.id}/{caller.task_run_id}"
            )
        except PausepointError as error:
            raise TaskError(f"subflow task: {error.message}") from None
        return {"executionId": reply.value.id}

    async def retry_execution(
        self, caller: LeafContext, *, original_id: str, attempt: int, original_created_at: float
    ) -> dict[str, Any]:
        own = await self._own(caller, "retry")
        link = await self._engine.store.execution_link(own.id)
        parent = None
        if link is not None:
            # A subflow's retry is its parent's child too: the parent waits for it instead.
            parent = SubflowParent(
                execution_id=link.parent_id,
                task_run_id=link.parent_task_run_id,
                root_id=link.root_id,
                waits=link.waits,
                hold=None,
                inherited_labels={},
            )
        request = StartRequest(
            namespace=own.namespace,
            flow_id=own.flow_id,
            inputs=dict(own.state.get("inputs") or {}),
            labels={**own.labels, REPLAY_LABEL: "true"},
            revision=own.flow_revision,
            trigger=own.state.get("trigger"),
            parent=parent,
            origin={"id": original_id, "attempt": attempt, "created_at": original_created_at},
        )
        try:
            # Keyed by the stage's task run: run again, it finds the execution it started.
            reply = await self._engine.call(
                request, _as_flow(own), idempotency_key=f"retry:{own.id}/{caller.task_run_id}"
            )
        except PausepointError as error:
            raise TaskError(f"retry: {error.message}") from None
        return {"executionId": reply.value.id}

    async def read_file(self, caller: LeafContext, uri: str) -> bytes:
        own = await self._own(caller, "file")
        try:
            check_uri(uri)
        except StorageError as error:
            raise TaskError(str(error)) from None
        content = await self._engine.store.get_file(own.org_id, uri)
        if content is None:
            raise TaskError(f"no file is stored at {uri}")
        return content

    async def decision_link(
        self, caller: LeafContext, pause_id: str, approver: str, action: str
    ) -> str:
        own = await self._own(caller, "approval link")
        if action not in ACTIONS:
            raise TaskError(f"a decision link approves, denies or reviews, not {action!r}")
        minted = await self._engine.as_org(own.org_id).mint_decision_link(
            own.id, pause_id, approver, action, must_be_open=False
        )
        return minted.url

    async def toggle_trigger(
        self,
        caller: LeafContext,
        *,
        namespace: str | None,
        flow_id: str | None,
        trigger_id: str,
        enabled: bool | None,
    ) -> dict[str, Any]:
        own = await self._own(caller, "toggle")
        namespace, flow_id = namespace or own.namespace, flow_id or own.flow_id
        principal = _as_flow(own)
        try:
            if enabled is None:
                current = await self._engine.as_org(own.org_id).trigger(
                    namespace, flow_id, trigger_id
                )
                enabled = current.paused
            request: PauseTriggerRequest | ResumeTriggerRequest = (
                ResumeTriggerRequest(namespace=namespace, flow_id=flow_id, trigger_id=trigger_id)
                if enabled
                else PauseTriggerRequest(
                    namespace=namespace, flow_id=flow_id, trigger_id=trigger_id
                )
            )
            reply = await self._engine.call(
                request, principal, idempotency_key=f"toggle-task:{caller.task_run_id}"
            )
        except PausepointError as error:
            raise TaskError(f"toggle task: {error.message}") from None
        view = reply.value
        return {
            "namespace": view.namespace,
            "flowId": view.flow_id,
            "trigger": view.trigger_id,
            "enabled": not view.paused,
        }

    async def callback_url(self, caller: LeafContext, task_id: str) -> str:
        own = await self._own(caller, "callback")
        try:
            minted = await self._engine.as_org(own.org_id).mint_callback(own.id, task_id)
        except PausepointError as error:
            raise TaskError(f"callback: {error.message}") from None
        return minted.url

    async def write_file(self, caller: LeafContext, task_id: str, name: str, content: bytes) -> str:
        own = await self._own(caller, "file")
        run_id = caller.task_run_id.rpartition("/")[2]
        try:
            uri = task_file_uri(own.namespace, own.flow_id, own.id, task_id, run_id, name)
        except StorageError as error:
            raise TaskError(str(error)) from None
        if len(content) > MAX_FILE_BYTES:
            raise TaskError(f"{uri}: {len(content)} bytes is more than a file may hold")
        await self._engine.store.put_file(own.org_id, uri, content, self._engine.clock())
        return uri

    async def execution_logs(
        self,
        caller: LeafContext,
        execution_id: str | None,
        *,
        namespace: str | None,
        flow_id: str | None,
    ) -> list[dict[str, Any]]:
        store = self._engine.store
        own = await self._own(caller, "log fetch")
        target = own if execution_id in (None, own.id) else await store.get_execution(execution_id)
        if target is None or target.org_id != own.org_id:
            raise TaskError(f"log fetch task: execution {execution_id} not found")
        expected = (namespace or own.namespace, flow_id or own.flow_id)
        if target is not own and expected != (target.namespace, target.flow_id):
            raise TaskError(
                f"log fetch task: execution {target.id} is an execution of "
                f"{target.namespace}.{target.flow_id}, not of {expected[0]}.{expected[1]} "
                "(name its namespace and flowId)"
            )
        lines: list[dict[str, Any]] = []
        after = 0
        while events := await store.read_events(target.id, after=after):
            for event in events:
                after = event.seq
                logs = event.data.get("logs")
                if not isinstance(logs, list):
                    continue
                for line in logs:
                    if isinstance(line, dict):
                        lines.append(
                            {
                                "executionId": target.id,
                                "taskId": event.data.get("task_id"),
                                "taskRunId": event.data.get("task_run_id"),
                                "level": line.get("level"),
                                "message": line.get("message"),
                                "timestamp": iso(float(line.get("at") or event.at)),
                            }
                        )
        return lines

    async def kv_put(
        self,
        caller: LeafContext,
        namespace: str,
        key: str,
        value: Any,
        *,
        overwrite: bool,
        ttl: float | None,
        description: str | None,
    ) -> None:
        own = await self._own(caller, "kv")
        now = self._engine.clock()
        written = await self._engine.store.put_kv(
            own.org_id,
            namespace,
            key,
            value,
            overwrite=overwrite,
            expires_at=None if ttl is None else now + ttl,
            description=description,
            now=now,
        )
        if not written:
            raise TaskError(
                f"kv set task: key {key!r} of namespace {namespace} already has a value "
                "(set overwrite: true to replace it)"
            )

    async def kv_get(self, caller: LeafContext, namespace: str, key: str) -> tuple[bool, Any]:
        own = await self._own(caller, "kv")
        return await self._engine.store.get_kv(own.org_id, namespace, key, self._engine.clock())

    async def purge_logs(self, caller: LeafContext, which: dict[str, Any]) -> int:
        own = await self._own(caller, "purge logs")
        return await self._engine.store.purge_logs(LogFilter(org_id=own.org_id, **which))

    async def kv_delete(self, caller: LeafContext, namespace: str, key: str) -> bool:
        own = await self._own(caller, "kv")
        return await self._engine.store.delete_kv(own.org_id, namespace, key, self._engine.clock())

    async def organization(self, caller: LeafContext) -> str:
        return (await self._own(caller, "organization")).org_id

    async def _own(self, caller: LeafContext, task: str) -> ExecutionRecord:
        own = await self._engine.store.get_execution(caller.execution_id)
        if own is None:
            raise TaskError(f"{task} task: its own execution {caller.execution_id} is gone")
        return own


def _as_flow(own: ExecutionRecord) -> Principal:
    """A task acts as its flow, an operator of its execution's organization."""
    return Principal(own.org_id, "operator", f"flow:{own.namespace}.{own.flow_id}")
