"""The engine's core: its store, runtime, event feed and caches, and its lifecycle."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from pausepoint.config import Settings
from pausepoint.engine.flowindex import FlowIndex
from pausepoint.engine.interpreter import EngineEnv, iso
from pausepoint.runtime.base import Runtime
from pausepoint.runtime.embedded import EmbeddedRuntime
from pausepoint.service.auth import Authenticator
from pausepoint.service.feed import EventFeed
from pausepoint.service.heap import freeze_startup_heap
from pausepoint.store.records import (
    ExecutionRecord,
)
from pausepoint.store.sql import create_store
from pausepoint.tasks.context import TaskControl
from pausepoint.tracing import tracing_for

if TYPE_CHECKING:
    from pausepoint.service.plane import ControlPlane

log = logging.getLogger("pausepoint.engine")

DEFAULT_ORG = "default"


def new_id(prefix: str = "") -> str:
    """Sortable, unique ids: milliseconds since the epoch, then randomness."""
    return f"{prefix}{int(time.time() * 1000):012x}{secrets.token_hex(6)}"


def keyed_id(org_id: str, idempotency_key: str) -> str:
    """The id of the execution an organization starts with ``idempotency_key``."""
    digest = hashlib.sha256(f"{org_id}\0{idempotency_key}".encode()).hexdigest()
    return digest[:24]


def iso_or_none(at: float | None) -> str | None:
    return iso(at) if at is not None else None


SECRETS_CACHE_SECONDS = 2.0
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
    plane: ControlPlane | None = None
    # (org, namespace, flow) -> held while deciding whether an execution gets a slot
    concurrency_locks: dict[tuple[str, str, str], asyncio.Lock] = field(default_factory=dict)
    # Work started by a call and left running after it returns (cascades to children).
    background: set[asyncio.Task[None]] = field(default_factory=set)
    # This process, as the owner of the short leases it takes in the database.
    owner: str = field(
        default_factory=lambda: f"{secrets.token_hex(4)}:{os.getpid()}:{socket.gethostname()}"[:64]
    )


class EngineCore:
    """What every layer of ``Engine`` builds on (see ``service/engine.py``)."""

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
        self.serve = serve
        self.run_executions = run_executions
        # Who the in-process API's commands name when the call names nobody.
        self.default_actor = "anonymous"
        self.clock = clock
        self.store = create_store(
            self.settings.db, sqlite_synchronous=self.settings.sqlite_synchronous
        )
        self._secrets = secrets if secrets is not None else self._secrets_from_env()
        self._shared = _Caches()
        self._flows = self._shared.flows
        self.feed = EventFeed(org_of=self._org_of)
        self.runtime: Runtime
        if self.settings.runtime == "temporal":
            # Imported only here: the embedded runtime never loads temporalio.
            from pausepoint.runtime.temporal import TemporalRuntime

            self.runtime = TemporalRuntime(
                self.store,
                self.settings,
                env_for=self._env_for,
                listener=self.feed,
                clock=clock,
                serve=serve,
                task_control=self._task_control(),
            )
        else:
            self.runtime = EmbeddedRuntime(
                self.store,
                self.settings,
                env_for=self._env_for,
                listener=self.feed,
                clock=clock,
                serve=serve,
                run_executions=run_executions,
                task_control=self._task_control(),
            )
        self._started = False

    def _task_control(self) -> TaskControl | None:
        """What tasks may do to other executions (engine.py: through the control plane)."""
        return None

    async def _env_for(self, execution: ExecutionRecord) -> EngineEnv:
        """The flow revision ``execution`` runs and its organization's secrets (flows.py)."""
        raise NotImplementedError

    async def _org_of(self, execution_id: str) -> str:
        record = await self.store.get_execution(execution_id)
        return record.org_id if record is not None else ""

    def _secrets_from_env(self) -> dict[str, str]:
        prefix = self.settings.secret_env_prefix
        return {
            name.removeprefix(prefix): value
            for name, value in os.environ.items()
            if name.startswith(prefix) and len(name) > len(prefix)
        }

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        # Spans asked for without the packages they need: refused now, not per request.
        tracing_for(self.settings)
        await self.store.open()
        await self.runtime.start()
        self._started = True
        if self.settings.gc_freeze:
            freeze_startup_heap()

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` after the call that asks for it returns; a failure is logged."""
        task = asyncio.create_task(work)
        self._shared.background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[None]) -> None:
        self._shared.background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background work failed", exc_info=task.exception())

    def as_org(self, org_id: str) -> Self:
        """The same engine acting for another organization (shares store, runtime, caches)."""
        scoped = copy.copy(self)
        scoped.org_id = org_id
        return scoped

    def acting_as(self, actor: str) -> Self:
        """The same engine recording the commands it is given as sent by ``actor``
        (unless a call names its own; the CLI's local commands say ``cli``)."""
        acting = copy.copy(self)
        acting.default_actor = actor
        return acting

    async def drain(self, grace: float) -> None:
        """Start nothing new here; give work in flight ``grace`` seconds to reach a checkpoint
        (so pending pauses land). What does not finish is re-run by the next owner."""
        await self.runtime.drain(grace)

    async def stop(self, grace: float = 0.0) -> None:
        """Stop this process's part: with ``grace``, in-flight tasks get that long to finish
        (so pending pauses land); whatever still runs is re-run by the next owner."""
        if self._started:
            if grace > 0:
                await self.drain(grace)
            for task in list(self._shared.background):
                task.cancel()
            await asyncio.gather(*self._shared.background, return_exceptions=True)
            await self.runtime.stop()
            self._started = False
        await self.store.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- operations ---------------------------------------------------------------

    def runs_here(self, execution_id: str) -> bool:
        """Whether ``execution_id`` runs in this process now (its events are then live here)."""
        return self.runtime.runs_here(execution_id)

    async def ready(self) -> None:
        """Return once the store answers a cheap query; raise whatever stops it."""
        await self.store.count_api_keys()

    async def count_executions_by_state(self) -> dict[str, int]:
        """Executions of every organization by state (an operator's gauge)."""
        return await self.store.count_executions_by_state()

    def observe_checkpoints(self, observer: Callable[[float], None]) -> None:
        """Call ``observer`` with the seconds each checkpoint transaction of this process takes.

        On Temporal, workers checkpoint: an API server has nothing to observe."""
        committer = getattr(self.runtime, "committer", None)
        if committer is not None:
            committer.observe(observer)
