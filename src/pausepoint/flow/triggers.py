"""Triggers: how a flow starts without anyone calling the API (Kestra's ``triggers``).

- ``schedule``: a cron expression (five fields, or six with ``withSeconds``;
  ``@hourly`` and friends), in a ``timezone``, with ``inputs``, an optional
  ``backfill`` from a past date, and what to do with ticks missed while
  nothing ran (``recoverMissedSchedules``: ``ALL``, ``LAST`` or ``NONE``).
- ``webhook``: a secret ``key`` (a template, or none: then one is derived for
  the installation); a request to the webhook URL with that key starts an
  execution that reads the request as ``trigger.body``, ``trigger.headers``
  and ``trigger.parameters``. ``inputs``, a ``when`` condition, a
  ``signature`` (HMAC-SHA256 of the raw body), and ``wait`` (answer when the
  execution ends, with its outputs under ``returnOutputs``).
- ``flow``: starts when an execution of another flow changes state (ends, by
  default, or pauses), if its ``conditions`` and ``when`` hold; a
  ``dependsOn`` of several flows, ``preconditions`` and Kestra's older
  ``MultipleCondition`` fire once every one of their conditions was met by
  some execution within a time window.

Models validate structure (a wrong cron or time zone is refused when the flow
is loaded); the service layer fires them (``service/triggers.py``,
``service/flow_triggers.py``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from pausepoint.flow.durations import parse_duration

TRIGGER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_\-]*$"
EXECUTION_STATES = (
    "CREATED",
    "RUNNING",
    "PAUSED",
    "SUCCESS",
    "WARNING",
    "FAILED",
    "KILLING",
    "KILLED",
    "CANCELLED",
    "QUEUED",
    "RETRYING",
)
"""Kestra's execution states, as ExecutionStatus conditions and ``states`` name them."""

ENDED_STATES = ("SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED")
DEFAULT_FLOW_TRIGGER_STATES = (*ENDED_STATES, "PAUSED")
"""A Flow trigger without ``states`` looks at executions that end or pause, as Kestra's."""

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
    "io.kestra.plugin.core.condition.MultipleCondition": "multiple",
    "io.kestra.core.models.conditions.types.MultipleCondition": "multiple",
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _known_states(states: list[str] | None) -> list[str] | None:
    unknown = [state for state in states or () if state not in EXECUTION_STATES]
    if unknown:
        raise ValueError(f"unknown state {unknown[0]!r}; states: {', '.join(EXECUTION_STATES)}")
    return states


# -- what a Flow trigger looks at ------------------------------------------------------------


class EndedExecution(_Model):
    """An execution as a Flow trigger's conditions see it, at one of its state changes.

    ``state`` is Kestra's name of the state it moved to (``SUCCESS``, ``PAUSED``,
    ``RUNNING``, …); ``status`` is pausepoint's current state of the execution.
    """

    id: str
    namespace: str
    flow_id: str
    flow_revision: int
    status: str  # pausepoint's
    state: str | None = None  # Kestra's, of this state change (None: the end, from status)
    labels: dict[str, str] = Field(default_factory=dict)
    outputs: dict[str, Any] = Field(default_factory=dict)

    @property
    def kestra_state(self) -> str:
        if self.state is not None:
            return self.state
        return KESTRA_STATE_OF.get(self.status, self.status)

    def variables(self) -> dict[str, Any]:
        """What ``when`` and precondition expressions read: the execution that changed state
        (``flow``, ``execution``, ``labels``, ``outputs``) and ``trigger.*``."""
        return {
            "flow": {
                "id": self.flow_id,
                "namespace": self.namespace,
                "revision": self.flow_revision,
            },
            "execution": {"id": self.id, "state": self.kestra_state},
            "labels": dict(self.labels),
            "outputs": dict(self.outputs),
            "trigger": {
                "executionId": self.id,
                "namespace": self.namespace,
                "flowId": self.flow_id,
                "flowRevision": self.flow_revision,
                "state": self.kestra_state,
                "executionLabels": dict(self.labels),
                "outputs": dict(self.outputs),
            },
        }


KESTRA_STATE_OF = {"COMPLETED": "SUCCESS", "TERMINATED": "KILLED", "TIMED_OUT": "FAILED"}


# -- conditions ----------------------------------------------------------------------------


class ExecutionStatusCondition(_Model):
    """The state the execution moved to is in ``in`` and not in ``notIn`` (Kestra's names)."""

    type: Literal["execution_status"]
    id: str | None = None
    in_: list[str] = Field(default_factory=list, alias="in")
    not_in: list[str] = Field(default_factory=list, alias="notIn")

    @field_validator("in_", "not_in")
    @classmethod
    def _states(cls, states: list[str]) -> list[str]:
        return _known_states(states) or []

    def holds(self, ended: EndedExecution) -> bool:
        state = ended.kestra_state
        return (not self.in_ or state in self.in_) and state not in self.not_in


class ExecutionFlowCondition(_Model):
    """The execution is one of flow ``namespace``.``flowId``."""

    type: Literal["execution_flow"]
    id: str | None = None
    namespace: str
    flow_id: str = Field(alias="flowId")

    def holds(self, ended: EndedExecution) -> bool:
        return (ended.namespace, ended.flow_id) == (self.namespace, self.flow_id)


class ExecutionNamespaceCondition(_Model):
    """The execution's namespace is ``namespace`` (or starts with it, with ``prefix``)."""

    type: Literal["execution_namespace"]
    id: str | None = None
    namespace: str
    prefix: bool = False

    def holds(self, ended: EndedExecution) -> bool:
        if self.prefix:
            return ended.namespace == self.namespace or ended.namespace.startswith(
                self.namespace.rstrip(".") + "."
            )
        return ended.namespace == self.namespace


PlainCondition = Annotated[
    ExecutionStatusCondition | ExecutionFlowCondition | ExecutionNamespaceCondition,
    Field(discriminator="type"),
]


# -- time windows (preconditions, dependsOn, MultipleCondition) ---------------------------


def _duration(value: str | None, what: str, *, zero: bool = False) -> str | None:
    if value is None:
        return None
    try:
        seconds = parse_duration(value)
    except ValueError as error:
        raise ValueError(f"{what}: {error}") from None
    if not zero and seconds <= 0:
        raise ValueError(f"{what}: must be a positive duration, got {value!r}")
    return value


def _clock_time(value: Any) -> Any:
    # YAML 1.1 reads an unquoted 9:00:00 as a number of seconds (base 60).
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 86400:
        return time(value // 3600, value // 60 % 60, value % 60)
    return value


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not a time zone (e.g. UTC, Europe/Paris)") from None
    return value


WindowType = Literal[
    "DURATION_WINDOW", "SLIDING_WINDOW", "DAILY_TIME_WINDOW", "DAILY_TIME_DEADLINE"
]


class TimeWindow(_Model):
    """Kestra's ``timeWindow``: when the conditions must all be met.

    ``DURATION_WINDOW`` (the default, ``window`` P1D): consecutive windows of
    ``window``, from midnight shifted by ``windowAdvance``. ``SLIDING_WINDOW``:
    the ``window`` before each execution's state change. ``DAILY_TIME_WINDOW``:
    from ``startTime`` to ``endTime`` each day; ``DAILY_TIME_DEADLINE``: from
    midnight to ``deadline`` each day. Days and clock times are in ``timezone``
    (UTC unless set).
    """

    type: WindowType = "DURATION_WINDOW"
    window: str | None = None
    window_advance: str | None = Field(default=None, alias="windowAdvance")
    start_time: time | None = Field(default=None, alias="startTime")
    end_time: time | None = Field(default=None, alias="endTime")
    deadline: time | None = None
    timezone: str = "UTC"

    @field_validator("start_time", "end_time", "deadline", mode="before")
    @classmethod
    def _times(cls, value: Any) -> Any:
        return _clock_time(value)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return _zone(value)

    @model_validator(mode="after")
    def _complete(self) -> TimeWindow:
        _duration(self.window, "window")
        _duration(self.window_advance, "windowAdvance", zero=True)
        if self.type == "DAILY_TIME_WINDOW" and (self.start_time is None or self.end_time is None):
            raise ValueError("a DAILY_TIME_WINDOW needs startTime and endTime")
        if self.type == "DAILY_TIME_DEADLINE" and self.deadline is None:
            raise ValueError("a DAILY_TIME_DEADLINE needs a deadline")
        return self

    def bounds(self, at: float) -> tuple[float, float] | None:
        """The window that holds the moment ``at`` (epoch seconds): [start, end), or None
        when ``at`` is outside every window (before a daily start, after a deadline)."""
        zone = ZoneInfo(self.timezone)
        local = datetime.fromtimestamp(at, zone)
        if self.type == "SLIDING_WINDOW":
            length = parse_duration(self.window or "P1D")
            return (at - length, at + 1e-6)
        if self.type in ("DAILY_TIME_WINDOW", "DAILY_TIME_DEADLINE"):
            day = local.date()
            start_time = self.start_time if self.type == "DAILY_TIME_WINDOW" else time(0)
            end_time = self.end_time if self.type == "DAILY_TIME_WINDOW" else self.deadline
            assert start_time is not None and end_time is not None
            start = datetime.combine(day, start_time, zone).timestamp()
            end = datetime.combine(day, end_time, zone).timestamp()
            return (start, end) if start <= at <= end else None
        length = parse_duration(self.window or "P1D")
        advance = parse_duration(self.window_advance or "PT0S")
        # Count in the zone's wall-clock seconds, so that a day window starts at local midnight.
        wall = (local.replace(tzinfo=None) - datetime(1970, 1, 1)).total_seconds()
        slot = (wall - advance) // length * length + advance
        start_wall = datetime(1970, 1, 1) + timedelta(seconds=slot)
        start = start_wall.replace(tzinfo=zone).timestamp()
        return (start, start + length)


class UpstreamFlow(_Model):
    """One flow a ``dependsOn`` or ``preconditions.flows`` waits for: its executions
    (``namespace``, ``flowId``) in one of ``states``, with ``labels``, where ``when`` holds."""

    namespace: str | None = None
    flow_id: str | None = Field(default=None, alias="flowId")
    states: list[str] | None = None
    labels: dict[str, Any] | None = None
    when: str | None = None

    @field_validator("states")
    @classmethod
    def _states(cls, states: list[str] | None) -> list[str] | None:
        return _known_states(states)


FilterField = Literal["FLOW_ID", "NAMESPACE", "STATE", "EXPRESSION"]
FilterType = Literal[
    "EQUAL_TO",
    "NOT_EQUAL_TO",
    "IN",
    "NOT_IN",
    "IS_TRUE",
    "IS_FALSE",
    "IS_NULL",
    "IS_NOT_NULL",
    "STARTS_WITH",
    "ENDS_WITH",
    "REGEX",
    "CONTAINS",
]
_NEEDS_VALUES = frozenset({"IN", "NOT_IN"})
_NEEDS_NOTHING = frozenset({"IS_TRUE", "IS_FALSE", "IS_NULL", "IS_NOT_NULL"})


class Filter(_Model):
    """One test of a ``where`` precondition on a field of the execution."""

    field: FilterField
    type: FilterType
    value: str | None = None
    values: list[str] | None = None

    @model_validator(mode="after")
    def _operand(self) -> Filter:
        if self.type in _NEEDS_VALUES and not self.values:
            raise ValueError(f"a {self.type} filter needs values")
        if self.type not in _NEEDS_VALUES | _NEEDS_NOTHING and self.value is None:
            raise ValueError(f"a {self.type} filter needs a value")
        if self.field == "EXPRESSION" and self.value is None:
            raise ValueError("an EXPRESSION filter needs the expression as its value")
        if self.type == "REGEX":
            try:
                re.compile(self.value or "")
            except re.error as error:
                msg = f"value: {self.value!r} is not a regular expression: {error}"
                raise ValueError(msg) from None
        return self


class ExecutionFilter(_Model):
    """A ``where`` precondition: its ``filters``, all (``AND``) or any (``OR``) of them."""

    id: str = Field(min_length=1)
    operand: Literal["AND", "OR"] = "AND"
    filters: list[Filter] = Field(min_length=1)


class Preconditions(_Model):
    """Kestra's ``preconditions``: ``flows`` and ``where`` conditions, each met by some
    execution within one ``timeWindow``; with ``resetOnSuccess`` (the default) each
    must be met again after the trigger fired."""

    id: str = Field(pattern=TRIGGER_ID_PATTERN)
    time_window: TimeWindow = Field(default_factory=TimeWindow, alias="timeWindow")
    reset_on_success: bool = Field(default=True, alias="resetOnSuccess")
    flows: list[UpstreamFlow] = Field(default_factory=list)
    where: list[ExecutionFilter] = Field(default_factory=list)

    @field_validator("flows")
    @classmethod
    def _namespaces(cls, flows: list[UpstreamFlow]) -> list[UpstreamFlow]:
        if any(flow.namespace is None for flow in flows):
            raise ValueError("each of the flows needs its namespace")
        return flows


class DependsOnWindow(_Model):
    """The ``window`` of a Flow trigger's ``dependsOn`` (Kestra's newer spelling of a
    timeWindow): ``deadline``; ``from`` and ``to``; ``lookback``; or ``every`` and
    ``offset``; and ``fireOnce`` (the conditions must all be met again after a firing)."""

    deadline: time | None = None
    from_: time | None = Field(default=None, alias="from")
    to: time | None = None
    every: str | None = None
    offset: str | None = None
    lookback: str | None = None
    timezone: str = "UTC"
    fire_once: bool = Field(default=False, alias="fireOnce")

    @field_validator("deadline", "from_", "to", mode="before")
    @classmethod
    def _times(cls, value: Any) -> Any:
        return _clock_time(value)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return _zone(value)

    @model_validator(mode="after")
    def _one_kind(self) -> DependsOnWindow:
        kinds = [
            name
            for name, used in (
                ("deadline", self.deadline is not None),
                ("from/to", self.from_ is not None or self.to is not None),
                ("lookback", self.lookback is not None),
                ("every/offset", self.every is not None or self.offset is not None),
            )
            if used
        ]
        if len(kinds) > 1:
            raise ValueError(f"give one kind of window, not {' and '.join(kinds)}")
        if (self.from_ is None) != (self.to is None):
            raise ValueError("from and to go together")
        _duration(self.every, "every")
        _duration(self.offset, "offset", zero=True)
        _duration(self.lookback, "lookback")
        return self

    def time_window(self) -> TimeWindow:
        if self.deadline is not None:
            return TimeWindow(
                type="DAILY_TIME_DEADLINE", deadline=self.deadline, timezone=self.timezone
            )
        if self.from_ is not None and self.to is not None:
            return TimeWindow(
                type="DAILY_TIME_WINDOW",
                start_time=self.from_,
                end_time=self.to,
                timezone=self.timezone,
            )
        if self.lookback is not None:
            return TimeWindow(type="SLIDING_WINDOW", window=self.lookback, timezone=self.timezone)
        return TimeWindow(window=self.every, window_advance=self.offset, timezone=self.timezone)


class MultipleCondition(_Model):
    """Kestra's older ``MultipleCondition``: named ``conditions``, each met by some
    execution within a ``window`` (P1D) shifted by ``windowAdvance``."""

    type: Literal["multiple"]
    id: str = Field(pattern=TRIGGER_ID_PATTERN)
    window: str = "P1D"
    window_advance: str = Field(default="PT0S", alias="windowAdvance")
    reset_on_success: bool = Field(default=True, alias="resetOnSuccess")
    conditions: dict[str, PlainCondition] = Field(min_length=1)

    @model_validator(mode="after")
    def _window(self) -> MultipleCondition:
        _duration(self.window, "window")
        _duration(self.window_advance, "windowAdvance", zero=True)
        return self


Condition = Annotated[
    ExecutionStatusCondition
    | ExecutionFlowCondition
    | ExecutionNamespaceCondition
    | MultipleCondition,
    Field(discriminator="type"),
]


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
        return _zone(value)

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


class WebhookSignature(_Model):
    """The caller signs the raw body: ``header`` carries ``prefix`` followed by the hex
    HMAC-SHA256 of the body under ``secret`` (a template: ``{{ secret('…') }}``)."""

    header: str = Field(min_length=1)
    secret: str = Field(min_length=1)
    prefix: str = ""


class WebhookTrigger(TriggerBase):
    type: Literal["webhook"]
    # Kestra's first Webhook generated the key when none was given; see webhook_key().
    key: str | None = Field(default=None, min_length=1, max_length=256)
    inputs: dict[str, Any] = Field(default_factory=dict)
    when: str | None = None
    wait: bool = False
    return_outputs: bool = Field(
        default=False,
        validation_alias=AliasChoices("returnOutputs", "outputsAsResponse", "return_outputs"),
        serialization_alias="returnOutputs",
    )
    response_content_type: Literal["application/json", "text/plain"] | None = Field(
        default=None, alias="responseContentType"
    )
    response_code: int | str | None = Field(default=None, alias="responseCode")
    signature: WebhookSignature | None = None

    @field_validator("response_code")
    @classmethod
    def _code(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and not 100 <= value <= 599:
            raise ValueError(f"{value} is not an HTTP status code (100 to 599)")
        if isinstance(value, str) and "{{" not in value and not value.strip().isdigit():
            raise ValueError(f"{value!r} is not an HTTP status code")
        return value


class FlowTrigger(TriggerBase):
    type: Literal["flow"]
    conditions: list[Condition] = Field(default_factory=list)
    inputs: dict[str, Any] = Field(default_factory=dict)
    states: list[str] | None = None
    when: str | None = None
    preconditions: Preconditions | None = None
    depends_on: list[UpstreamFlow] | None = Field(default=None, alias="dependsOn")
    window: DependsOnWindow | None = None

    @field_validator("states")
    @classmethod
    def _states(cls, states: list[str] | None) -> list[str] | None:
        return _known_states(states)

    @model_validator(mode="after")
    def _one_window(self) -> FlowTrigger:
        windows = [
            name
            for name, used in (
                ("preconditions", self.preconditions is not None),
                ("dependsOn", bool(self.depends_on)),
                (
                    "a MultipleCondition",
                    any(isinstance(c, MultipleCondition) for c in self.conditions),
                ),
            )
            if used
        ]
        if len(windows) > 1 or sum(isinstance(c, MultipleCondition) for c in self.conditions) > 1:
            raise ValueError(
                "one window of conditions per trigger is supported: "
                + " and ".join(windows)
                + " were given (use one Flow trigger each)"
            )
        if self.window is not None and not self.depends_on:
            raise ValueError("window: goes with dependsOn")
        return self

    @property
    def listened_states(self) -> tuple[str, ...]:
        """The state changes this trigger looks at (Kestra's names)."""
        return tuple(self.states) if self.states else DEFAULT_FLOW_TRIGGER_STATES

    @property
    def has_window(self) -> bool:
        """Whether it fires on a window of conditions (not on each change alone)."""
        return (
            self.preconditions is not None
            or bool(self.depends_on)
            or any(isinstance(c, MultipleCondition) for c in self.conditions)
        )

    def canonical(self) -> dict[str, Any]:
        """Its definition with the order of its dependencies left out: reordering them
        (Kestra keys each by its content) keeps the window's progress."""
        data = self.model_dump(mode="json", by_alias=True)
        if data.get("dependsOn"):
            data["dependsOn"] = sorted(data["dependsOn"], key=_sort_key)
        if data.get("preconditions"):
            for name in ("flows", "where"):
                data["preconditions"][name] = sorted(data["preconditions"][name], key=_sort_key)
        return data

    @property
    def plain_conditions(self) -> list[PlainCondition]:
        return [c for c in self.conditions if not isinstance(c, MultipleCondition)]

    def fires_for(self, ended: EndedExecution) -> bool:
        """Whether the state change passes ``states`` and the plain conditions (the window
        and ``when`` are judged by the service)."""
        return ended.kestra_state in self.listened_states and all(
            condition.holds(ended) for condition in self.plain_conditions
        )


def _sort_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


Trigger = Annotated[ScheduleTrigger | WebhookTrigger | FlowTrigger, Field(discriminator="type")]
TRIGGER_TYPES = ("schedule", "webhook", "flow")
CONDITION_TYPES = ("execution_status", "execution_flow", "execution_namespace", "multiple")

for _model in (ExecutionStatusCondition, FlowTrigger, EndedExecution, MultipleCondition):
    _model.model_rebuild()
