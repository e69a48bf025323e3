"""Triggers: how a flow starts without anyone calling the API (Kestra's ``triggers``).

- ``schedule``: a cron expression (five fields, or six with ``withSeconds``;
  ``@hourly`` and friends), in a ``timezone``, with ``inputs``, an optional
  ``backfill`` from a past date, and what to do with ticks missed while
  nothing ran (``recoverMissedSchedules``: ``ALL``, ``LAST`` or ``NONE``).
- ``webhook``: a secret ``key``; a request to the webhook URL with that key
  starts an execution that reads the request as ``trigger.body``,
  ``trigger.headers`` and ``trigger.parameters``.
- ``flow``: starts when an execution of another flow ends, if its
  ``conditions`` hold (``ExecutionStatus``, ``ExecutionFlow``,
  ``ExecutionNamespace``).

Models validate structure (a wrong cron or time zone is refused when the flow
is loaded); the service layer fires them (``service/triggers.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

TRIGGER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_\-]*$"
EXECUTION_STATES = (
    "CREATED",
    "RUNNING",
    "PAUSED",
    "SUCCESS",
    "WARNING",
    "FAILED",
    "KILLED",
    "CANCELLED",
    "QUEUED",
    "RETRYING",
)
"""Kestra's execution states, as ExecutionStatus conditions name them."""

TRIGGER_TYPE_ALIASES: Mapping[str, str] = {
    "io.kestra.plugin.core.trigger.Schedule": "schedule",
    "io.kestra.core.models.triggers.types.Schedule": "schedule",
    "io.kestra.plugin.core.trigger.Webhook": "webhook",
    "io.kestra.core.models.triggers.types.Webhook": "webhook",
    "io.kestra.plugin.core.trigger.Flow": "flow",
    "io.kestra.core.models.triggers.types.Flow": "flow",
}
CONDITION_TYPE_ALIASES: Mapping[str, str] = {
    "io.kestra.plugin.core.condition.ExecutionStatus": "execution_status",
    "io.kestra.plugin.core.condition.ExecutionStatusCondition": "execution_status",
    "io.kestra.core.models.conditions.types.ExecutionStatusCondition": "execution_status",
    "io.kestra.plugin.core.condition.ExecutionFlow": "execution_flow",
    "io.kestra.plugin.core.condition.ExecutionFlowCondition": "execution_flow",
    "io.kestra.core.models.conditions.types.ExecutionFlowCondition": "execution_flow",
    "io.kestra.plugin.core.condition.ExecutionNamespace": "execution_namespace",
    "io.kestra.plugin.core.condition.ExecutionNamespaceCondition": "execution_namespace",
    "io.kestra.core.models.conditions.types.ExecutionNamespaceCondition": "execution_namespace",
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# -- conditions ----------------------------------------------------------------------------


class ExecutionStatusCondition(_Model):
    """The ended execution's state is in ``in`` and not in ``notIn`` (Kestra's names)."""

    type: Literal["execution_status"]
    in_: list[str] = Field(default_factory=list, alias="in")
    not_in: list[str] = Field(default_factory=list, alias="notIn")

    @field_validator("in_", "not_in")
    @classmethod
    def _states(cls, states: list[str]) -> list[str]:
        unknown = [state for state in states if state not in EXECUTION_STATES]
        if unknown:
            raise ValueError(f"unknown state {unknown[0]!r}; states: {', '.join(EXECUTION_STATES)}")
        return states

    def holds(self, ended: EndedExecution) -> bool:
        state = ended.kestra_state
        return (not self.in_ or state in self.in_) and state not in self.not_in


class ExecutionFlowCondition(_Model):
    """The ended execution is one of flow ``namespace``.``flowId``."""

    type: Literal["execution_flow"]
    namespace: str
    flow_id: str = Field(alias="flowId")

    def holds(self, ended: EndedExecution) -> bool:
        return (ended.namespace, ended.flow_id) == (self.namespace, self.flow_id)


class ExecutionNamespaceCondition(_Model):
    """The ended execution's namespace is ``namespace`` (or starts with it, with ``prefix``)."""

    type: Literal["execution_namespace"]
    namespace: str
    prefix: bool = False

    def holds(self, ended: EndedExecution) -> bool:
        if self.prefix:
            return ended.namespace == self.namespace or ended.namespace.startswith(
                self.namespace.rstrip(".") + "."
            )
        return ended.namespace == self.namespace


Condition = Annotated[
    ExecutionStatusCondition | ExecutionFlowCondition | ExecutionNamespaceCondition,
    Field(discriminator="type"),
]


class EndedExecution(_Model):
    """What a Flow trigger's conditions look at."""

    id: str
    namespace: str
    flow_id: str
    flow_revision: int
    status: str  # pausepoint's
    outputs: dict[str, Any] = Field(default_factory=dict)

    @property
    def kestra_state(self) -> str:
        return KESTRA_STATE_OF.get(self.status, self.status)


KESTRA_STATE_OF = {"COMPLETED": "SUCCESS", "TERMINATED": "KILLED", "TIMED_OUT": "FAILED"}


# -- triggers ------------------------------------------------------------------------------


class TriggerBase(_Model):
    id: str = Field(pattern=TRIGGER_ID_PATTERN)
    type: str
    description: str | None = None
    disabled: bool = False


class Backfill(_Model):
    """Fire the ticks from ``start`` (to ``end``, or now) once, besides the regular ones."""

    start: datetime
    end: datetime | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _ordered(self) -> Backfill:
        if self.end is not None and aware(self.end) <= aware(self.start):
            raise ValueError("end: must be after start")
        return self


def aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class ScheduleTrigger(TriggerBase):
    type: Literal["schedule"]
    cron: str
    with_seconds: bool = Field(default=False, alias="withSeconds")
    timezone: str = "UTC"
    inputs: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    backfill: Backfill | None = None
    recover_missed_schedules: Literal["ALL", "LAST", "NONE"] = Field(
        default="ALL", alias="recoverMissedSchedules"
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a time zone (e.g. UTC, Europe/Paris)") from None
        return value

    @model_validator(mode="after")
    def _cron(self) -> ScheduleTrigger:
        fields = self.cron.split()
        nickname = self.cron.strip().startswith("@")
        expected = 6 if self.with_seconds else 5
        if not nickname and len(fields) != expected:
            hint = " (set withSeconds: true for six fields)" if len(fields) == 6 else ""
            raise ValueError(
                f"cron: {self.cron!r} has {len(fields)} fields, expected {expected}{hint}"
            )
        if not croniter.is_valid(self._cron_text()):
            raise ValueError(f"cron: {self.cron!r} is not a valid cron expression")
        return self

    def _cron_text(self) -> str:
        if self.with_seconds and not self.cron.strip().startswith("@"):
            # Kestra's six fields put seconds first; croniter wants them last.
            seconds, *rest = self.cron.split()
            return " ".join([*rest, seconds])
        return self.cron

    def ticks_after(self, after: float) -> TickIterator:
        """The fire times after ``after`` (epoch seconds), in this trigger's time zone."""
        start = datetime.fromtimestamp(after, ZoneInfo(self.timezone))
        return TickIterator(croniter(self._cron_text(), start))

    def next_tick(self, after: float) -> float:
        return self.ticks_after(after).next()


class TickIterator:
    def __init__(self, cron: croniter) -> None:
        self._cron = cron

    def next(self) -> float:
        value: float = self._cron.get_next(float)
        return value


class WebhookTrigger(TriggerBase):
    type: Literal["webhook"]
    key: str = Field(min_length=1, max_length=255)


class FlowTrigger(TriggerBase):
    type: Literal["flow"]
    conditions: list[Condition] = Field(default_factory=list)
    inputs: dict[str, Any] = Field(default_factory=dict)

    def fires_for(self, ended: EndedExecution) -> bool:
        return all(condition.holds(ended) for condition in self.conditions)


Trigger = Annotated[ScheduleTrigger | WebhookTrigger | FlowTrigger, Field(discriminator="type")]
TRIGGER_TYPES = ("schedule", "webhook", "flow")
CONDITION_TYPES = ("execution_status", "execution_flow", "execution_namespace")

for _model in (ExecutionStatusCondition, FlowTrigger, EndedExecution):
    _model.model_rebuild()
