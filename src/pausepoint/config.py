"""One settings object for the whole process.

Every interval, grace period and timeout lives here so that tests can shrink
them instead of sleeping. Environment variables use the ``PAUSEPOINT_`` prefix
(``PAUSEPOINT_DB=sqlite:///runs.db``, ``PAUSEPOINT_SHELL_ENABLED=true``).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_db_url() -> str:
    return f"sqlite:///{Path.cwd() / 'pausepoint.db'}"


class Settings(BaseSettings):
    """Process-wide settings; construct with keywords or from the environment."""

    model_config = SettingsConfigDict(env_prefix="PAUSEPOINT_", frozen=True, extra="forbid")

    db: str = Field(
        default_factory=default_db_url,
        description="Database URL: sqlite:///PATH, or postgresql://USER:PASSWORD@HOST/DB.",
    )
    sqlite_synchronous: str = Field(
        default="NORMAL",
        description="SQLite synchronous mode: NORMAL survives a process crash, FULL survives "
        "power loss as well.",
    )
    poll_interval: float = Field(
        default=0.2,
        gt=0,
        description="Seconds between looks for commands and due timers written by other processes.",
    )
    lease_ttl: float = Field(
        default=15.0,
        gt=0,
        description="Seconds a process owns an execution without renewing; after that another "
        "process may take it over.",
    )
    lease_renew_interval: float = Field(default=5.0, gt=0)
    cancel_grace_period: float = Field(
        default=5.0,
        ge=0,
        description="Seconds a subprocess gets between SIGTERM and SIGKILL when cancelled.",
    )
    shell_enabled: bool = Field(
        default=False, description="Allow `shell` tasks to run, in every organization."
    )
    shell_organizations: tuple[str, ...] = Field(
        default=(),
        description="Organizations (ids) allowed to run `shell` tasks while shell_enabled is "
        "false: PAUSEPOINT_SHELL_ORGANIZATIONS='[\"acme\"]'. See docs/SECURITY.md.",
    )
    http_allowed_hosts: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        description="Organization id -> host patterns (`api.example.com`, `*.example.com`, "
        "`10.0.0.5`) its `http` tasks and agent providers may reach; `*` is the entry for "
        "organizations not listed. Empty: no host limit. PAUSEPOINT_HTTP_ALLOWED_HOSTS="
        '\'{"acme": ["api.acme.com"], "*": []}\'.',
    )
    http_refuse_private: bool = Field(
        default=False,
        description="Refuse `http` tasks and agent providers whose host resolves to a loopback, "
        "private, link-local (169.254.169.254), multicast or reserved address, redirects "
        "included, unless the organization's http_allowed_hosts names that host exactly. "
        "Turn on for servers shared by several organizations.",
    )
    decision_link_ttl: float = Field(
        default=7 * 24 * 3600.0,
        gt=0,
        description="Seconds a decision link is valid by default (never past its request's "
        "deadline).",
    )
    callback_ttl: float = Field(
        default=30 * 24 * 3600.0, gt=0, description="Seconds a callback token is valid by default."
    )
    public_url: str = Field(
        default="",
        description="The server's address as its users reach it (http://host:port): approval "
        "tasks' `url` output and decision links start with it (empty: links are relative).",
    )
    trigger_interval: float = Field(
        default=1.0, gt=0, description="Seconds between two passes of a server's trigger loop."
    )
    trigger_misfire_grace: float = Field(
        default=60.0,
        ge=0,
        description="A schedule's tick older than this when seen was missed (nothing ran then): "
        "recoverMissedSchedules decides whether it fires.",
    )
    work_dir: str | None = Field(
        default=None,
        description="Where WorkingDirectory tasks get their scratch directories "
        "(default: <temp dir>/pausepoint-work).",
    )
    python_paths: tuple[str, ...] = Field(
        default=(), description="Extra directories searched when importing `python` task functions."
    )
    python_modules: tuple[str, ...] = Field(
        default=(),
        description="Modules (or packages, with everything in them) `python` tasks and agent "
        "tools may call functions of, besides the modules and packages found directly under "
        'python_paths: PAUSEPOINT_PYTHON_MODULES=\'["mycompany.tasks", "json"]\'. The '
        "standard library's process, file, network and code-loading modules (os, subprocess, "
        "builtins, importlib, ...) are allowed only when named here. See docs/SECURITY.md.",
    )
    max_task_threads: int = Field(default=16, gt=0, description="Threads for sync Python tasks.")
    secret_env_prefix: str = Field(
        default="SECRET_",
        description="Environment variables with this prefix are exposed as {{ secrets.NAME }}.",
    )
    parked_cache_size: int = Field(
        default=1000,
        ge=0,
        description="Paused executions whose state this process keeps to resume them without "
        "reloading (bounded; a paused execution holds no coroutine either way).",
    )
    gc_freeze: bool = Field(
        default=True,
        description="When the process's first engine starts, collect garbage once and then "
        "freeze (gc.freeze) every object alive, so the cyclic collector's passes skip them: "
        "a sixth less CPU per execution under load. Cycles among objects alive then are "
        "never collected.",
    )
    secrets_key: str | None = Field(
        default=None,
        description="Fernet key sealing stored secrets; unset: a key file beside the database.",
    )
    jwt_algorithm: str = Field(default="HS256", pattern="^(HS256|RS256)$")
    jwt_key: str | None = Field(
        default=None,
        description="HS256 shared secret or RS256 public key (PEM); unset disables JWT auth.",
    )
    jwt_audience: str | None = None
    otel_traces: bool = Field(
        default=False,
        description="Record an OpenTelemetry span for each control request and each task run "
        "(needs the `otel` extra); exported where the OTEL_* variables say.",
    )
    max_body_bytes: int = Field(default=1_048_576, gt=0, description="Largest request body.")
    auth_failure_limit: int = Field(
        default=20,
        ge=0,
        description="Failed authentications a client may make within auth_failure_window "
        "before every request from it gets 429 until the window ends (0: no limit).",
    )
    auth_failure_window: float = Field(
        default=60.0,
        gt=0,
        description="Seconds, from a client's first failed authentication, that its failures "
        "are counted (and that it is refused once over the limit).",
    )
    auth_failure_clients: int = Field(
        default=10_000,
        gt=0,
        description="Clients whose failures are tracked at most; past that the stalest is "
        "forgotten, which bounds the memory the limit takes.",
    )
    trusted_proxies: tuple[str, ...] = Field(
        default=(),
        description="Addresses or networks (CIDR) of reverse proxies whose X-Forwarded-For names "
        "the client; unset: the client is the connection's peer address.",
    )
    shutdown_grace_period: float = Field(
        default=10.0,
        ge=0,
        description="Seconds a stopping server lets in-flight tasks finish before letting go.",
    )
    command_wait_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a control call waits for its command to be applied before replying "
        "with the state at that moment.",
    )
    runtime: Literal["embedded", "temporal"] = Field(
        default="embedded",
        description="Where executions run: in this process (embedded) or on Temporal workers.",
    )
    temporal_address: str = Field(
        default="localhost:7233", description="Temporal frontend (HOST:PORT) for runtime=temporal."
    )
    temporal_namespace: str = Field(default="default", description="Temporal namespace.")
    temporal_task_queue: str = Field(
        default="pausepoint", description="Task queue the workflows and their tasks run on."
    )
    temporal_heartbeat_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds a running task may go without a heartbeat before Temporal takes its "
        "worker for dead and runs the task again on another one.",
    )
    temporal_sweep_interval: float = Field(
        default=5.0,
        gt=0,
        description="Seconds between looks (by the API server) for commands and executions that "
        "never reached Temporal, say because a process died between recording and sending.",
    )
    temporal_send_timeout: float = Field(
        default=5.0,
        gt=0,
        description="Seconds a start or command is given to reach Temporal before the request "
        "is answered anyway (the command is recorded; the sweep delivers it once Temporal is "
        "back). While Temporal is unreachable, requests do not try at all.",
    )
    temporal_continue_as_new_after: int = Field(
        default=10_000,
        ge=0,
        description="Workflow history length after which an execution continues as new "
        "(0: only when Temporal suggests it).",
    )
    temporal_terminate_after: float = Field(
        default=30.0,
        gt=0,
        description="Seconds a terminate may wait for its workflow (no worker running, say) before "
        "the API server ends the workflow through Temporal and records TERMINATED itself.",
    )

    shannon_task_flow: str | None = Field(
        default=None,
        pattern=r"^[^/\s]+/[^/\s]+$",
        description="NAMESPACE/FLOW_ID of the flow Shannon's POST /api/v1/tasks starts for a "
        "query (its inputs: query, and session_id and context when given); unset: that route "
        "answers 501.",
    )

    retention: dict[str, str] = Field(
        default_factory=dict,
        description="How long ended executions are kept, as ISO-8601 durations keyed by "
        "ORG, ORG/NAMESPACE (that namespace and those below it) or * (every organization); "
        "the most specific key wins. Unset: kept forever. A server purges what is older "
        "every purge_interval; `pausepoint purge` does it on demand.",
    )
    audit_retention: str | None = Field(
        default=None,
        description="ISO-8601 duration an execution with control commands (its audit trail) "
        "is kept at least, whole, when that is longer than its retention (unset: its "
        "retention alone).",
    )
    purge_interval: float = Field(
        default=300.0, gt=0, description="Seconds between two retention purges of a server."
    )
    purge_batch: int = Field(
        default=50,
        gt=0,
        description="Executions a purge removes per transaction: checkpoints commit between "
        "batches (on SQLite a batch of 50 holds the writer about 16 ms, 200 about 55 ms).",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _check_trusted_proxies(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            try:
                ipaddress.ip_network(value.strip(), strict=False)
            except ValueError:
                raise ValueError(
                    f"{value!r} is not an IP address or network (use 10.0.0.5 or 10.0.0.0/8)"
                ) from None
        return values

    @field_validator("retention")
    @classmethod
    def _check_retention(cls, values: dict[str, str]) -> dict[str, str]:
        from pausepoint.flow.durations import parse_duration  # the flow package is heavy

        for key, value in values.items():
            org, _, namespace = key.partition("/")
            if not org.strip() or (key.count("/") and not namespace.strip()) or "/" in namespace:
                raise ValueError(
                    f"retention key {key!r}: use ORG, ORG/NAMESPACE or * (e.g. acme/prod)"
                )
            if org == "*" and namespace:
                raise ValueError(f"retention key {key!r}: * stands alone, without a namespace")
            try:
                parse_duration(value)
            except ValueError as error:
                raise ValueError(f"retention[{key!r}]: {error}") from None
        return values

    @field_validator("audit_retention")
    @classmethod
    def _check_audit_retention(cls, value: str | None) -> str | None:
        from pausepoint.flow.durations import parse_duration

        if value is not None:
            try:
                parse_duration(value)
            except ValueError as error:
                raise ValueError(f"audit_retention: {error}") from None
        return value
