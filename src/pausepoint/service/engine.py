"""``Engine``: the control plane of one process, and pausepoint's Python API.

It loads flows, starts executions, accepts control commands (recording each
durably before acknowledging it), reads state and follows events. The CLI and
the HTTP API use nothing else. Executions run in the embedded runtime of this
process, or of any other process sharing the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import functools
import hashlib
import os
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from pausepoint.config import Settings
from pausepoint.engine.control import admit, on_resume_specs, project, view_of
from pausepoint.engine.flowindex import FlowIndex
from pausepoint.engine.interpreter import EngineEnv, iso, new_state
from pausepoint.engine.model import Command, CommandResult, ExecutionStatus
from pausepoint.engine.state import Masker, masker, redact_secret_inputs, shown_pause_outputs
from pausepoint.errors import Conflict, FieldError, FlowError, InvalidInput, NotFound
from pausepoint.flow import coerce_inputs, inputs_json_schema, load_flow
from pausepoint.flow.model import Flow
from pausepoint.models import (
    CommandView,
    ContextMessage,
    ControlResult,
    EventView,
    ExecutionView,
    PausePointView,
    StateView,
    TaskRunView,
)
from pausepoint.runtime.actor import command_event, core_state
from pausepoint.runtime.base import NewExecution, Runtime
from pausepoint.runtime.embedded import EmbeddedRuntime
from pausepoint.service.auth import Authenticator, JwtSettings, check_role, new_api_key
from pausepoint.service.heap import freeze_startup_heap
from pausepoint.service.requests import (
    CancelRequest,
    ControlRequest,
    InjectRequest,
    PauseRequest,
    ResumeRequest,
    TerminateRequest,
)
from pausepoint.service.secretbox import SecretBox
from pausepoint.service.surface import SurfaceMixin
from pausepoint.store.access import ApiKeyRecord
from pausepoint.store.records import (
    Checkpoint,
    CommandRecord,
    EventRecord,
    ExecutionRecord,
    FlowRecord,
)
from pausepoint.store.sql import create_store, sqlite_path

DEFAULT_ORG = "default"


def new_id(prefix: str = "") -> str:
    """Sortable, unique ids: milliseconds since the epoch, then randomness."""
    return f"{prefix}{int(time.time() * 1000):012x}{secrets.token_hex(6)}"


def keyed_id(org_id: str, idempotency_key: str) -> str:
    """The id of the execution an organization starts with ``idempotency_key``."""
    digest = hashlib.sha256(f"{org_id}\0{idempotency_key}".encode()).hexdigest()
    return digest[:24]


def _iso(at: float | None) -> str | None:
    return iso(at) if at is not None else None


SECRETS_CACHE_SECONDS = 2.0
# A control call waiting for its command checks the store at most this far apart.
WAIT_POLL_CEILING = 1.0
EXECUTION_FLOW_CACHE = 20_000
SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


FlowKey = tuple[str, str, str, int]  # organization, namespace, flow id, revision


@dataclass
class _Caches:
    """Caches shared by an engine and its per-organization views."""

    flows: dict[tuple[str, str, str, int], FlowIndex] = field(default_factory=dict)
    # execution id -> the flow revision it runs (fixed for its lifetime), oldest first
    execution_flows: dict[str, FlowKey] = field(default_factory=dict)
    # One tuple per flow revision, shared by every execution_flows entry that names it
    flow_keys: dict[FlowKey, FlowKey] = field(default_factory=dict)
    org_secrets: dict[str, tuple[float, dict[str, str]]] = field(default_factory=dict)
    # organization -> the read of its secrets in progress, which every caller shares
    secrets_loading: dict[str, asyncio.Future[dict[str, str]]] = field(default_factory=dict)
    authenticator: Authenticator | None = None


class Engine(SurfaceMixin):
    """pausepoint in one process: store, control plane and embedded runtime.

    Use as ``async with Engine(Settings(db="sqlite:///runs.db")) as engine: …``.
    With ``serve=True`` the process also picks up work left by others (a
    server); otherwise it runs only what it starts or is asked to continue.
    With ``run_executions=False`` it runs nothing at all: commands and new
    executions are recorded and left to the processes that serve the database.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        org_id: str = DEFAULT_ORG,
        serve: bool = False,
        run_executions: bool = True,
        clock: Callable[[], float] = time.time,
        secrets: dict[str, str] | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.org_id = org_id
        self.clock = clock
        self.store = create_store(
            self.settings.db, sqlite_synchronous=self.settings.sqlite_synchronous
        )
        self._secrets = secrets if secrets is not None else self._secrets_from_env()
        self._shared = _Caches()
        self._flows = self._shared.flows
        self.runtime: Runtime
        if self.settings.runtime == "temporal":
            # Imported only here: the embedded runtime never loads temporalio.
            from pausepoint.runtime.temporal import TemporalRuntime

            self.runtime = TemporalRuntime(
                self.store, self.settings, env_for=self._env_for, clock=clock, serve=serve
            )
        else:
            self.runtime = EmbeddedRuntime(
                self.store,
                self.settings,
                env_for=self._env_for,
                clock=clock,
                serve=serve,
                run_executions=run_executions,
            )
        self._started = False

    def _secrets_from_env(self) -> dict[str, str]:
        prefix = self.settings.secret_env_prefix
        return {
            name.removeprefix(prefix): value
            for name, value in os.environ.items()
            if name.startswith(prefix) and len(name) > len(prefix)
        }

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        await self.store.open()
        await self.runtime.start()
        self._started = True
        if self.settings.gc_freeze:
            freeze_startup_heap()

    def as_org(self, org_id: str) -> Engine:
        """The same engine acting for another organization (shares store, runtime, caches)."""
        scoped = copy.copy(self)
        scoped.org_id = org_id
        return scoped

    @functools.cached_property
    def secret_box(self) -> SecretBox:
        path = sqlite_path(self.settings.db)
        key_file = (path.parent if path else Path.cwd()) / ".pausepoint-secrets.key"
        return SecretBox.from_settings(self.settings.secrets_key, key_file)

    @property
    def authenticator(self) -> Authenticator:
        """One per engine, shared with its per-organization views (it caches verifications)."""
        if self._shared.authenticator is None:
            jwt_settings = None
            if self.settings.jwt_key:
                jwt_settings = JwtSettings(
                    self.settings.jwt_algorithm, self.settings.jwt_key, self.settings.jwt_audience
                )
            self._shared.authenticator = Authenticator(self.store, jwt_settings)
        return self._shared.authenticator

    # -- keys and secrets ----------------------------------------------------------

    async def create_api_key(self, role: str, name: str = "") -> tuple[str, ApiKeyRecord]:
        """A new API key for this organization; the key itself is returned once, never stored."""
        key, record = new_api_key(self.org_id, check_role(role), name or role, self.clock())
        await self.store.create_api_key(record)
        return key, record

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        return await self.store.list_api_keys(self.org_id)

    async def revoke_api_key(self, key_id: str) -> None:
        if not await self.store.revoke_api_key(key_id, self.clock(), self.org_id):
            raise NotFound(f"API key {key_id} not found (or already revoked)")
        self.authenticator.forget_verified()

    async def bootstrap_admin_key(self) -> str | None:
        """On a database without any key, create an admin key for the default org (once)."""
        if await self.store.count_api_keys():
            return None
        key, _ = await self.as_org(DEFAULT_ORG).create_api_key("admin", "bootstrap admin")
        return key

    async def put_secret(self, name: str, value: str) -> None:
        """Store a secret, sealed; templates read it as ``{{ secrets.NAME }}``."""
        if not SECRET_NAME.match(name):
            raise InvalidInput(
                f"secret name {name!r} must be letters, digits and underscores",
                [FieldError(("path", "name"), "letters, digits and underscores", "pattern")],
            )
        await self.store.put_secret(self.org_id, name, self.secret_box.seal(value), self.clock())
        self._forget_secrets()

    async def delete_secret(self, name: str) -> None:
        if not await self.store.delete_secret(self.org_id, name):
            raise NotFound(f"secret {name} not found")
        self._forget_secrets()

    async def secret_names(self) -> list[str]:
        return list(await self.store.sealed_secrets(self.org_id))

    async def stop(self, grace: float = 0.0) -> None:
        """Stop this process's part: with ``grace``, in-flight tasks get that long to finish
        (so pending pauses land); whatever still runs is re-run by the next owner."""
        if self._started:
            if grace > 0:
                await self.runtime.drain(grace)
            await self.runtime.stop()
            self._started = False
        await self.store.close()

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- flows -----------------------------------------------------------------

    async def put_flow(self, source: str, *, source_name: str = "<flow>") -> FlowRecord:
        """Validate and store a flow (YAML text); returns its revision."""
        flow = load_flow(source, source=source_name)
        record = await self.store.put_flow(
            self.org_id, flow.namespace, flow.id, source, self.clock()
        )
        # Parsed once here: the executions of this revision need not parse it again.
        key = (record.org_id, record.namespace, record.flow_id, record.revision)
        self._flows[key] = FlowIndex.build(flow.model_copy(update={"revision": record.revision}))
        return record

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
        return EngineEnv(index, await self._secrets_for(execution.org_id))

    def _forget_secrets(self) -> None:
        """After a change: the next use reads them again (a read in progress is not reused)."""
        self._shared.org_secrets.pop(self.org_id, None)
        self._shared.secrets_loading.pop(self.org_id, None)

    async def _secrets_for(self, org_id: str) -> dict[str, str]:
        cached = self._shared.org_secrets.get(org_id)
        if cached is not None and self.clock() - cached[0] < SECRETS_CACHE_SECONDS:
            return cached[1]
        # One read per organization at a time: when the cache runs out under load, a
        # thousand executions starting at once wait for the same read.
        loading = self._shared.secrets_loading.get(org_id)
        if loading is None:
            loading = asyncio.ensure_future(self._read_secrets(org_id))
            self._shared.secrets_loading[org_id] = loading
        return await asyncio.shield(loading)

    async def _read_secrets(self, org_id: str) -> dict[str, str]:
        now = self.clock()
        try:
            # SECRET_* environment variables belong to the default organization only:
            # one tenant must never read another's.
            values = dict(self._secrets) if org_id == DEFAULT_ORG else {}
            for name, (sealed, _) in (await self.store.sealed_secrets(org_id)).items():
                values[name] = self.secret_box.open(sealed)
        finally:
            mine = self._shared.secrets_loading.get(org_id) is asyncio.current_task()
            if mine:
                del self._shared.secrets_loading[org_id]
        if mine:  # not changed meanwhile
            self._shared.org_secrets[org_id] = (now, values)
        return values

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
    ) -> ExecutionView:
        """Create an execution (inputs validated and coerced) and start running it here.

        With ``idempotency_key``, the execution's id is derived from it: starting
        again with the same key (say, a client retrying after its server died
        mid-request) finds the execution the first start created.
        """
        revision, index = await self._flow_index(namespace, flow_id, revision)
        flow = index.flow
        values = coerce_inputs(flow.inputs, inputs or {}, loc_prefix=("inputs",))
        now = self.clock()
        execution_id = keyed_id(self.org_id, idempotency_key) if idempotency_key else new_id()
        all_labels = {**flow.labels, **(labels or {})}
        state = new_state(execution_id, index, inputs=values, labels=all_labels, at=now)
        execution = ExecutionRecord(
            id=execution_id,
            org_id=self.org_id,
            namespace=flow.namespace,
            flow_id=flow.id,
            flow_revision=revision,
            status=ExecutionStatus.QUEUED.value,
            state=core_state(state),
            labels=all_labels,
            created_at=now,
            updated_at=now,
            started_at=None,
            ended_at=None,
            event_seq=0,
            lease_owner=self.runtime.owner if self.runtime.run_executions else None,
            lease_expires_at=now + self.settings.lease_ttl if self.runtime.run_executions else None,
            commands_version=0,
        )
        created = await self.store.create_execution(
            execution,
            Checkpoint(execution_id, "", "QUEUED", {}, None, None, now),
        )
        if not created:
            return await self.execution(execution_id)
        self.runtime.watch(execution_id)
        self._remember_flow(execution_id, (self.org_id, namespace, flow_id, revision))
        env = EngineEnv(index, await self._secrets_for(self.org_id))
        await self.runtime.submit(execution_id, NewExecution(execution, state, env))
        return self._view(execution, [], env)

    async def _record(self, execution_id: str) -> ExecutionRecord:
        record = await self.store.get_execution(execution_id)
        if record is None or record.org_id != self.org_id:
            raise NotFound(f"execution {execution_id} not found")
        return record

    async def execution(self, execution_id: str) -> ExecutionView:
        """Everything about one execution, as of its last checkpoint."""
        record = await self._record(execution_id)
        runs = await self.store.load_task_runs(execution_id)
        return self._view(record, runs, await self._env_for(record))

    def _view(
        self, record: ExecutionRecord, runs: list[dict[str, Any]], env: EngineEnv
    ) -> ExecutionView:
        state = record.state
        runs.sort(key=lambda run: int(run["id"][1:]))
        mask = _masker(state, env)
        return ExecutionView(
            id=record.id,
            namespace=record.namespace,
            flow_id=record.flow_id,
            flow_revision=record.flow_revision,
            state=record.status,
            inputs=redact_secret_inputs(env.index.flow.inputs, state["inputs"]),
            labels=record.labels,
            created_at=iso(record.created_at),
            started_at=_iso(record.started_at),
            ended_at=_iso(record.ended_at),
            checkpoint=state.get("checkpoint"),
            pause_reason=state.get("pause_reason"),
            pause_points=self._pause_points(state, env),
            task_runs=[_task_run_view(_shown_run(run, env, mask)) for run in runs],
            context=[ContextMessage(**m) for m in state["context"]["messages"]],
            outputs=state.get("result"),
            error=(state.get("error") or {}).get("message") or _first_failure(runs),
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
                    deadline=_iso(pause.get("deadline")),
                    reason=pause.get("reason"),
                    by=pause.get("by"),
                    on_resume_schema=(
                        inputs_json_schema(specs) if pause["kind"] != "manual" else None
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
        )

    # -- control -------------------------------------------------------------------

    async def control(self, request: ControlRequest) -> ControlResult:
        """Accept a control command: validate, record durably, then have it applied.

        Raises ``NotFound`` (404), ``Conflict`` (409: not legal in the current
        state) or ``InvalidInput`` (422: bad payload, bad resume inputs).
        """
        request.validate()
        index = await self._admission_index(request.execution_id)
        now = self.clock()
        command_id = new_id("cmd_")

        def decide(execution: ExecutionRecord, pending: list[CommandRecord]) -> dict[str, Any]:
            view = view_of(execution.state)
            for earlier in pending:
                view = project(view, command_event(earlier))
            command = admit(
                view,
                Command(
                    command_id,
                    request.kind,  # type: ignore[arg-type]
                    now,
                    request.actor,
                    request.reason,
                    request.payload(),
                ),
                index,
            )
            return {
                "id": command.id,
                "kind": command.kind,
                "payload": command.payload,
                "actor": request.actor,
                "reason": request.reason,
                "request_id": request.request_id,
            }

        command, replayed, commands_version = await self.store.accept_command(
            request.execution_id, request.idempotency_key, decide, now, org_id=self.org_id
        )
        if replayed and command.kind != request.kind:
            raise Conflict(
                f"idempotency key {request.idempotency_key!r} was already used for a "
                f"{command.kind} command on execution {request.execution_id}"
            )
        if not replayed:
            waiter = self.runtime.command_waiter(command.id)
            await self.runtime.deliver(command, commands_version)
            if request.wait:
                command = await self._wait_applied(command, waiter)
            self.runtime.drop_command_waiter(command.id)
        return await self._control_result(command, replayed)

    async def _admission_index(self, execution_id: str) -> FlowIndex:
        """The flow an execution runs, for admitting its commands (cached: it never changes).

        The organization is checked again inside the accepting transaction.
        """
        known = self._shared.execution_flows.get(execution_id)
        if known is not None and known[0] == self.org_id:
            index = self._flows.get(known)
            if index is not None:
                return index
        record = await self._record(execution_id)
        index = (await self._env_for(record)).index
        self._remember_flow(
            execution_id, (record.org_id, record.namespace, record.flow_id, record.flow_revision)
        )
        return index

    def _remember_flow(self, execution_id: str, key: FlowKey) -> None:
        """Note which flow revision an execution runs (an entry costs about 120 bytes)."""
        flows = self._shared.execution_flows
        flows[execution_id] = self._shared.flow_keys.setdefault(key, key)
        if len(flows) > EXECUTION_FLOW_CACHE:
            del flows[next(iter(flows))]

    async def _wait_applied(
        self, command: CommandRecord, waiter: asyncio.Future[CommandResult]
    ) -> CommandRecord:
        """The command once applied (or refused), or as accepted if that takes too long."""
        deadline = self.clock() + self.settings.command_wait_timeout
        # The store is asked again less and less often: thousands of waiters at once
        # must not add a read each per poll interval to the work they wait for.
        interval = self.settings.poll_interval
        while True:
            remaining = deadline - self.clock()
            if remaining <= 0:
                return command
            if waiter.done():
                result = waiter.result()
                return dataclasses.replace(
                    command,
                    status="applied" if result.applied else "rejected",
                    message=result.message,
                    state_after=result.status.value,
                    applied_at=self.clock(),
                )
            step = min(remaining, interval)
            interval = min(interval * 2, WAIT_POLL_CEILING)
            if self.runtime.owns(command.execution_id):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(waiter), step)
                if waiter.done():
                    continue
            else:
                await asyncio.sleep(step)
                # Whoever ran it may have let go meanwhile (paused, or exiting): then it
                # continues here rather than waiting for a process that is not coming.
                if await self.runtime.adopt(command.execution_id):
                    continue
            latest = await self.store.get_command(command.id)
            if latest is not None and latest.status != "pending":
                return latest

    async def _control_result(self, command: CommandRecord, replayed: bool) -> ControlResult:
        applied = None if command.status == "pending" else command.status == "applied"
        if command.state_after is not None:
            state = command.state_after
        elif applied is None and command.state_before is not None:
            state = command.state_before  # read in the transaction that accepted it
        else:
            state = (await self._record(command.execution_id)).status
        if applied is None:
            message = f"{command.kind} accepted; it will be applied at the next checkpoint"
        elif applied:
            message = f"{command.kind} applied"
        else:
            message = f"{command.kind} accepted but not applied: {command.message}"
        result = ControlResult(
            execution_id=command.execution_id,
            state=state,
            message=message,
            command_id=command.id,
            applied=applied,
            replayed=replayed,
            pause_id=command.payload.get("pause_id")
            or (command.id if command.kind == "pause" else None),
        )
        if command.kind == "terminate" and applied:
            result.terminated_at = _iso(command.applied_at)
        return result

    async def pause(
        self,
        execution_id: str,
        *,
        reason: str | None = None,
        actor: str = "anonymous",
        idempotency_key: str | None = None,
    ) -> ControlResult:
        return await self.control(
            PauseRequest(
                execution_id=execution_id,
                reason=reason,
                actor=actor,
                idempotency_key=idempotency_key,
            )
        )

    async def resume(
        self,
        execution_id: str,
        *,
        inputs: dict[str, Any] | None = None,
        pause_id: str | None = None,
        actor: str = "anonymous",
        idempotency_key: str | None = None,
    ) -> ControlResult:
        return await self.control(
            ResumeRequest(
                execution_id=execution_id,
                inputs=inputs or {},
                pause_id=pause_id,
                actor=actor,
                idempotency_key=idempotency_key,
            )
        )

    async def cancel(
        self,
        execution_id: str,
        *,
        reason: str | None = None,
        actor: str = "anonymous",
        idempotency_key: str | None = None,
    ) -> ControlResult:
        return await self.control(
            CancelRequest(
                execution_id=execution_id,
                reason=reason,
                actor=actor,
                idempotency_key=idempotency_key,
            )
        )

    async def terminate(
        self,
        execution_id: str,
        *,
        reason: str,
        actor: str = "anonymous",
        idempotency_key: str | None = None,
    ) -> ControlResult:
        return await self.control(
            TerminateRequest(
                execution_id=execution_id,
                reason=reason,
                actor=actor,
                idempotency_key=idempotency_key,
            )
        )

    async def inject(
        self,
        execution_id: str,
        message: str,
        *,
        role: str = "user",
        actor: str = "anonymous",
        idempotency_key: str | None = None,
    ) -> ControlResult:
        return await self.control(
            InjectRequest(
                execution_id=execution_id,
                message=message,
                role=role,  # type: ignore[arg-type]  # validated by the request
                actor=actor,
                idempotency_key=idempotency_key,
            )
        )

    async def validate_resume(
        self, execution_id: str, inputs: dict[str, Any], pause_id: str | None = None
    ) -> dict[str, Any]:
        """Dry run of resume: the coerced inputs (SECRET-typed ones shown as ``******``),
        or ``InvalidInput`` naming each field."""
        record = await self._record(execution_id)
        env = await self._env_for(record)
        view = view_of(record.state)
        command = admit(
            view,
            Command(
                "dry-run", "resume", self.clock(), payload={"inputs": inputs, "pause_id": pause_id}
            ),
            env.index,
        )
        values: dict[str, Any] = command.payload["inputs"]
        specs = on_resume_specs(env.index, view.pauses[command.payload["pause_id"]])
        return redact_secret_inputs(specs, values)

    async def commands(self, execution_id: str) -> list[CommandView]:
        """Every control command ever accepted for the execution (the audit trail).

        The values of SECRET-typed resume inputs show as ``******``.
        """
        record = await self._record(execution_id)
        commands = await self.store.list_commands(execution_id)
        env = await self._env_for(record)
        mask = _masker(record.state, env)
        # A resume names its pause point; its task (whose inputs say what is SECRET)
        # is found through the run that opened it.
        pause_specs: dict[str, Any] = {}
        if any(c.kind == "resume" and c.payload.get("inputs") for c in commands):
            for run in await self.store.load_task_runs(execution_id):
                if run.get("type") == "pause" and run.get("pause_id"):
                    task = env.index.task(run["path"])
                    pause_specs[run["pause_id"]] = getattr(task, "on_resume", ())

        def shown(payload: dict[str, Any]) -> dict[str, Any]:
            inputs = payload.get("inputs")
            if isinstance(inputs, dict) and inputs:
                specs = pause_specs.get(payload.get("pause_id") or "", ())
                payload = {**payload, "inputs": redact_secret_inputs(specs, inputs)}
            masked: dict[str, Any] = mask(payload)
            return masked

        return [
            CommandView(
                id=c.id,
                seq=c.seq,
                kind=c.kind,
                actor=c.actor,
                reason=c.reason,
                payload=shown(c.payload),
                idempotency_key=c.idempotency_key,
                request_id=c.request_id,
                status=c.status,
                message=c.message,
                state_before=c.state_before,
                state_after=c.state_after,
                created_at=iso(c.created_at),
                applied_at=_iso(c.applied_at),
            )
            for c in commands
        ]

    # -- events ------------------------------------------------------------------------

    async def events(
        self, execution_id: str, *, after: int = 0, limit: int = 1000
    ) -> list[EventView]:
        await self._record(execution_id)
        return [
            event_view(e)
            for e in await self.store.read_events(execution_id, after=after, limit=limit)
        ]

    async def follow(self, execution_id: str, *, after: int = 0) -> AsyncIterator[EventView]:
        """Every event after ``after``, live, in order; ends after the terminal event."""
        await self._record(execution_id)
        news = asyncio.Event()  # only a wake-up: the events themselves come from the store

        def wake(_: list[EventRecord]) -> None:
            news.set()

        self.runtime.add_sink(execution_id, wake)
        try:
            while True:
                batch = await self.store.read_events(execution_id, after=after)
                for event in batch:
                    after = event.seq
                    view = event_view(event)
                    yield view
                    if view.is_terminal:
                        return
                if batch:
                    continue
                record = await self._record(execution_id)
                if ExecutionStatus(record.status).is_terminal and record.event_seq <= after:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(news.wait(), self.settings.poll_interval)
                news.clear()
        finally:
            self.runtime.remove_sink(execution_id, wake)

    async def wait(
        self,
        execution_id: str,
        *,
        until: Callable[[ExecutionView], bool] | None = None,
        timeout: float | None = None,
    ) -> ExecutionView:
        """Wait until the execution is terminal (or ``until`` holds); returns its view."""
        condition = until or (lambda view: view.is_terminal)
        # Only what happens from now on can change the answer: follow from here, not
        # from the first event (a long execution's history is no business of ours).
        seen = (await self._record(execution_id)).event_seq

        async def watch() -> ExecutionView:
            async for event in self.follow(execution_id, after=seen):
                # Only workflow.* events change the execution's state: task events
                # are frequent, and building a full view for each would cost O(n²).
                if not event.type.startswith("workflow."):
                    continue
                view = await self.execution(execution_id)
                if condition(view):
                    return view
            return await self.execution(execution_id)

        view = await self.execution(execution_id)
        if condition(view):
            return view
        return await asyncio.wait_for(watch(), timeout)

    async def adopt(self, execution_id: str) -> bool:
        """Continue ``execution_id`` in this process if no live process runs it."""
        await self._record(execution_id)
        self.runtime.watch(execution_id)
        return await self.runtime.adopt(execution_id)


def _masker(state: dict[str, Any], env: EngineEnv) -> Masker:
    """Masks what the execution's engine masks: its secrets and SECRET-typed input values."""
    return masker(env.secrets.values(), state.get("secret_values") or ())


def _shown_run(run: dict[str, Any], env: EngineEnv, mask: Masker) -> dict[str, Any]:
    """A Pause task run keeps its onResume values for later tasks: show them redacted."""
    if run.get("type") != "pause" or not run.get("outputs"):
        return run
    specs = getattr(env.index.task(run["path"]), "on_resume", ())
    return {**run, "outputs": shown_pause_outputs(specs, run["outputs"], mask)}


def _task_run_view(run: dict[str, Any]) -> TaskRunView:
    return TaskRunView(
        id=run["id"],
        task_id=run["task_id"],
        type=run["type"],
        state=run["state"],
        attempt=run["attempt"],
        parent=run.get("parent"),
        value=run.get("value"),
        started_at=_iso(run.get("started_at")),
        ended_at=_iso(run.get("ended_at")),
        outputs=run.get("outputs"),
        error=run.get("error"),
    )


def _first_failure(runs: list[dict[str, Any]]) -> str | None:
    for run in runs:
        if (
            run["state"] == "FAILED"
            and run.get("error")
            and run["type"]
            not in (
                "sequential",
                "parallel",
                "if",
                "switch",
                "foreach",
                "iteration",
            )
        ):
            return f"task '{run['task_id']}': {run['error']}"
    return None


def event_view(event: EventRecord) -> EventView:
    """The public shape of a stored event."""
    return EventView(
        execution_id=event.execution_id,
        seq=event.seq,
        type=event.type,
        at=iso(event.at),
        data=event.data,
    )
