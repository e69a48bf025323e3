"""Flows: store revisions, read them, and the parsed flow an execution runs."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from pausepoint.engine.flowindex import FlowIndex
from pausepoint.engine.interpreter import EngineEnv
from pausepoint.errors import FieldError, FlowError, InvalidInput, NotFound
from pausepoint.flow import load_flow
from pausepoint.flow.model import Flow
from pausepoint.service.access import AccessLayer
from pausepoint.store.records import (
    ExecutionRecord,
    FlowRecord,
)
from pausepoint.store.triggers import trigger_specs
from pausepoint.tasks.policy import check_flow_functions


@dataclass(frozen=True)
class StoredFlow:
    record: FlowRecord
    created: bool  # a new revision (False: the source was the latest revision's already)


class FlowsLayer(AccessLayer):
    async def put_flow(self, source: str, *, source_name: str = "<flow>") -> FlowRecord:
        """Validate and store a flow (YAML text); returns its revision.

        A python task or agent tool naming a function the operator does not allow
        is refused here (422 naming the task), not when it runs."""
        flow = load_flow(source, source=source_name)
        check_flow_functions(flow, self.settings, source_name)
        record = await self.store.put_flow(
            self.org_id, flow.namespace, flow.id, source, self.clock()
        )
        # Parsed once here: the executions of this revision need not parse it again.
        key = (record.org_id, record.namespace, record.flow_id, record.revision)
        self._flows[key] = FlowIndex.build(flow.model_copy(update={"revision": record.revision}))
        await self.store.sync_triggers(
            self.org_id, flow.namespace, flow.id, trigger_specs(flow, self.clock()), self.clock()
        )
        return record

    async def put_flow_at(
        self, namespace: str, flow_id: str, source: str, *, source_name: str = "<flow>"
    ) -> StoredFlow:
        """Store ``source`` as ``namespace``/``flow_id``, which it must declare (422 naming the
        field otherwise); ``StoredFlow.created`` is False when it was the latest already."""
        flow = load_flow(source, source=source_name)
        mismatched = [
            FieldError(
                ("body", name), f"{given!r} does not match the URL's {expected!r}", "mismatch"
            )
            for name, given, expected in (
                ("namespace", flow.namespace, namespace),
                ("id", flow.id, flow_id),
            )
            if given != expected
        ]
        if mismatched:
            raise InvalidInput("; ".join(str(e) for e in mismatched), mismatched)
        previous = await self.store.latest_revision(self.org_id, namespace, flow_id)
        record = await self.put_flow(source, source_name=source_name)
        return StoredFlow(record, created=previous != record.revision)

    async def put_flow_file(self, path: str | Path) -> FlowRecord:
        path = Path(path)
        try:
            source = await asyncio.to_thread(path.read_text, encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise FlowError(f"{path}: cannot read the flow: {error}") from None
        return await self.put_flow(source, source_name=path.name)

    async def load_flow_dir(self, directory: str | Path) -> list[FlowRecord]:
        """Create or update every ``*.yaml``/``*.yml`` flow in ``directory``."""
        paths = sorted(await asyncio.to_thread(lambda: list(Path(directory).glob("*.y*ml"))))
        return [await self.put_flow_file(path) for path in paths]

    async def flow(self, namespace: str, flow_id: str, revision: int | None = None) -> Flow:
        record = await self._flow_record(namespace, flow_id, revision)
        return (await self._index(record)).flow

    async def flow_record(
        self, namespace: str, flow_id: str, revision: int | None = None
    ) -> FlowRecord:
        """The stored revision (default: the latest); ``NotFound`` if there is none."""
        return await self._flow_record(namespace, flow_id, revision)

    async def list_flows(self) -> list[FlowRecord]:
        return await self.store.list_flows(self.org_id)

    async def delete_flow(self, namespace: str, flow_id: str) -> None:
        if not await self.store.delete_flow(self.org_id, namespace, flow_id):
            raise NotFound(f"flow {namespace}.{flow_id} not found")
        await self.store.remove_triggers(self.org_id, namespace, flow_id)

    async def _flow_record(
        self,
        namespace: str,
        flow_id: str,
        revision: int | None = None,
        *,
        org_id: str | None = None,
    ) -> FlowRecord:
        record = await self.store.get_flow(org_id or self.org_id, namespace, flow_id, revision)
        if record is None:
            which = f" revision {revision}" if revision is not None else ""
            raise NotFound(f"flow {namespace}.{flow_id}{which} not found")
        return record

    async def _flow_index(
        self,
        namespace: str,
        flow_id: str,
        revision: int | None = None,
        *,
        org_id: str | None = None,
    ) -> tuple[int, FlowIndex]:
        """The parsed flow and its revision (the newest unless ``revision`` is given).

        A revision never changes once stored, so its parsed flow is reused; usually
        only the newest revision's number is read.
        """
        org_id = org_id or self.org_id
        if revision is None:
            revision = await self.store.latest_revision(org_id, namespace, flow_id)
            if revision is None:
                raise NotFound(f"flow {namespace}.{flow_id} not found")
        index = self._flows.get((org_id, namespace, flow_id, revision))
        if index is None:
            record = await self._flow_record(namespace, flow_id, revision, org_id=org_id)
            index = await self._index(record)
        return revision, index

    async def _index(self, record: FlowRecord) -> FlowIndex:
        key = (record.org_id, record.namespace, record.flow_id, record.revision)
        index = self._flows.get(key)
        if index is None:
            flow = load_flow(record.source, source=f"{record.namespace}.{record.flow_id}")
            index = FlowIndex.build(flow.model_copy(update={"revision": record.revision}))
            self._flows[key] = index
        return index

    async def _env_for(self, execution: ExecutionRecord) -> EngineEnv:
        """The flow revision the execution started with, and its organization's secrets."""
        _, index = await self._flow_index(
            execution.namespace, execution.flow_id, execution.flow_revision, org_id=execution.org_id
        )
        return EngineEnv(index, await self._secrets_for(execution.org_id), self.settings.public_url)
