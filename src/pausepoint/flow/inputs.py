"""Typed inputs: a flow's ``inputs`` and a Pause task's ``onResume``.

An :class:`InputSpec` declares one input (Kestra's input types and property
names). :func:`coerce_inputs` turns raw values — strings from the CLI
(``-i approved=true``) or JSON values from the API — into validated,
JSON-serialisable values, and :func:`inputs_json_schema` describes a set of
inputs for forms and API clients.

The type names live in :mod:`~pausepoint.flow.input_types`, the coercion of one
value in :mod:`~pausepoint.flow.coercion` and the JSON Schema in
:mod:`~pausepoint.flow.input_schema`; every name stays importable from here.

Ids may be dotted (``request.name``): the coerced values nest
(``{"request": {"name": ...}}``) so templates read ``inputs.request.name``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pausepoint.errors import FieldError, InputValidationError
from pausepoint.flow.coercion import MAX_VALUE_DEPTH, InvalidValue, coerce_value, show_value
from pausepoint.flow.durations import is_template
from pausepoint.flow.input_schema import inputs_json_schema
from pausepoint.flow.input_types import (
    CHOICES,
    INPUT_ID_PATTERN,
    INPUT_TYPES,
    ITEM_TYPES,
    ORDERED,
    TEMPORAL,
)

__all__ = [
    "INPUT_ID_PATTERN",
    "INPUT_TYPES",
    "ITEM_TYPES",
    "MAX_VALUE_DEPTH",
    "InputSpec",
    "coerce_inputs",
    "coerce_value",
    "input_id_problems",
    "inputs_json_schema",
]


class InputSpec(BaseModel):
    """One declared input.

    ``type`` is stored upper-cased as written (``BOOL`` stays ``BOOL``);
    :attr:`kind` is the type whose rules apply (``BOOL`` -> ``BOOLEAN``,
    ``ENUM`` -> ``SELECT``). ``defaults`` are checked against the type when
    the spec is built, unless they are a ``{{ … }}`` template.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str = Field(pattern=INPUT_ID_PATTERN)
    type: str
    description: str | None = None
    display_name: str | None = Field(default=None, alias="displayName")
    required: bool = True
    defaults: Any = None
    values: list[Any] | None = None
    item_type: str | None = Field(default=None, alias="itemType")
    validator: str | None = Field(default=None, description="STRING/SECRET: a full-match regex.")
    min: int | float | str | None = Field(default=None, description="INT, FLOAT, DURATION.")
    max: int | float | str | None = Field(default=None, description="INT, FLOAT, DURATION.")
    after: str | None = Field(default=None, description="DATE, DATETIME, TIME: exclusive.")
    before: str | None = Field(default=None, description="DATE, DATETIME, TIME: exclusive.")
    allow_custom_value: bool = Field(default=False, alias="allowCustomValue")
    properties: list[InputSpec] | None = Field(default=None, description="OBJECT: its fields.")
    columns: list[InputSpec] | None = Field(default=None, description="TABLE: its columns.")
    rows: TableRows | None = Field(default=None, description="TABLE: how many rows.")
    json_schema: str | dict[str, Any] | None = Field(
        default=None, alias="jsonSchema", description="JSON: a JSON Schema the value must meet."
    )

    @field_validator("type", "item_type", mode="before")
    @classmethod
    def _known_type(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        name = value.strip().upper()
        if name not in INPUT_TYPES:
            raise ValueError(
                f"unknown input type {value!r}; allowed types: {', '.join(sorted(INPUT_TYPES))}"
            )
        return name

    @field_validator("validator")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                msg = f"validator {value!r} is not a valid regular expression: {exc}"
                raise ValueError(msg) from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> InputSpec:
        kind = self.kind
        if (self.properties is not None) != (kind == "OBJECT"):
            raise ValueError("an OBJECT input needs 'properties'; only OBJECT inputs have them")
        if (self.columns is not None) != (kind == "TABLE"):
            raise ValueError("a TABLE input needs 'columns'; only TABLE inputs have them")
        if self.rows is not None and kind != "TABLE":
            raise ValueError("rows applies only to TABLE inputs")
        for nested in (self.properties, self.columns):
            for position, message in input_id_problems([spec.id for spec in nested or ()]):
                raise ValueError(f"{nested[position].id}: {message}")  # type: ignore[index]
        if self.json_schema is not None:
            if kind != "JSON":
                raise ValueError("jsonSchema applies only to JSON inputs")
            object.__setattr__(self, "json_schema", checked_schema(self.json_schema))
        if kind in CHOICES and not self.values:
            raise ValueError(f"a {self.type} input needs a non-empty 'values' list")
        if self.item_type is not None and kind != "ARRAY":
            raise ValueError("itemType applies only to ARRAY inputs")
        if self.item_type is not None and self.item_type not in ITEM_TYPES:
            raise ValueError(
                f"itemType {self.item_type} is not allowed; "
                f"use one of {', '.join(sorted(ITEM_TYPES))}"
            )
        if self.validator is not None and kind not in ("STRING", "SECRET"):
            raise ValueError("validator applies only to STRING and SECRET inputs")
        for bound in ("min", "max"):
            value = getattr(self, bound)
            if value is None:
                continue
            if kind not in ORDERED:
                raise ValueError(f"{bound} applies only to INT, FLOAT and DURATION inputs")
            _check(self, value, f"{bound}: ")
        for bound in ("after", "before"):
            value = getattr(self, bound)
            if value is None:
                continue
            if kind not in TEMPORAL:
                raise ValueError(f"{bound} applies only to DATE, DATETIME and TIME inputs")
            _check(self, value, f"{bound}: ")
        if self.defaults is not None and not _is_template_value(self.defaults):
            _check(self, self.defaults, "defaults: ", check_bounds=True)
        return self

    @property
    def kind(self) -> str:
        """The canonical type: ``BOOL`` -> ``BOOLEAN``, ``ENUM`` -> ``SELECT``."""
        return INPUT_TYPES[self.type]

    @property
    def path(self) -> tuple[str, ...]:
        """The id split on dots: where the value sits in the nested result."""
        return tuple(self.id.split("."))

    def item_spec(self) -> InputSpec:
        """The spec each item of an ARRAY input is checked against."""
        return InputSpec(id="item", type=self.item_type or "STRING")


class TableRows(BaseModel):
    """How many rows a TABLE input takes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=1)


def checked_schema(schema: str | dict[str, Any]) -> dict[str, Any]:
    """A JSON input's ``jsonSchema`` as a mapping, checked to be a valid schema."""
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except ValueError as exc:
            raise ValueError(f"jsonSchema is not JSON: {exc}") from None
    if not isinstance(schema, dict):
        raise ValueError("jsonSchema must be a JSON object")
    validator = jsonschema.validators.validator_for(schema)
    try:
        validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ValueError(f"jsonSchema is not a valid JSON Schema: {exc.message}") from None
    return schema


def _check(spec: InputSpec, value: Any, prefix: str, *, check_bounds: bool = False) -> None:
    try:
        coerce_value(spec, value, check_bounds=check_bounds)
    except InvalidValue as exc:
        raise ValueError(f"{prefix}{exc}") from None


def _is_template_value(value: Any) -> bool:
    return isinstance(value, str) and is_template(value)


# --- a set of inputs ------------------------------------------------------------------


def input_id_problems(ids: Sequence[Any]) -> list[tuple[int, str]]:
    """``(position, message)`` for ids declared twice or that are both a value and a group.

    ``request`` and ``request.name`` cannot both be inputs: ``inputs.request``
    would have to be a value and an object at once. Entries that are not
    strings are skipped (the spec's own validation reports them).
    """
    problems: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for position, input_id in enumerate(ids):
        if not isinstance(input_id, str):
            continue
        if input_id in seen:
            problems.append((position, f"input id {input_id!r} is declared twice"))
        else:
            seen[input_id] = position
    for input_id, position in seen.items():
        prefix = input_id + "."
        group = next((other for other in seen if other.startswith(prefix)), None)
        if group is not None:
            msg = f"input {input_id!r} cannot hold a value and also group {group!r}"
            problems.append((position, msg))
    return problems


def _flatten(
    raw: Mapping[str, Any],
    ids: frozenset[str],
    groups: frozenset[str],
    prefix: str,
    given: dict[str, Any],
    errors: list[tuple[str, FieldError]],
    loc_prefix: tuple[str, ...],
) -> None:
    for key, value in raw.items():
        full = f"{prefix}{key}"
        if not isinstance(key, str):
            errors.append((full, FieldError((*loc_prefix, full), "input names must be strings")))
        elif full in ids:
            if full in given:
                msg = f"input {full!r} is given twice (nested and dotted)"
                errors.append((full, FieldError((*loc_prefix, full), msg)))
            elif value is not None:
                given[full] = value
        elif full in groups and isinstance(value, Mapping):
            _flatten(value, ids, groups, f"{full}.", given, errors, loc_prefix)
        elif full in groups and value is None:
            continue
        else:
            known = ", ".join(sorted(ids)) or "none"
            msg = f"unknown input {full!r}; known inputs: {known}"
            errors.append((full, FieldError((*loc_prefix, full), msg, "extra_forbidden")))


def _nest(values: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for dotted, value in values.items():
        *parents, leaf = dotted.split(".")
        target = nested
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value
    return nested


def coerce_inputs(
    specs: Sequence[InputSpec],
    raw: Mapping[str, Any],
    *,
    loc_prefix: tuple[str, ...] = ("inputs",),
) -> dict[str, Any]:
    """Validate ``raw`` against ``specs``; return JSON-serialisable values, nested by id.

    ``raw`` may hold strings (CLI) or JSON values (API), nested
    (``{"request": {"name": "x"}}``) or flat dotted (``{"request.name": "x"}``);
    ``None`` counts as not given. Missing values take their ``defaults``; a
    required input with neither is an error; an optional one is ``None`` (as in
    Kestra, so templates can test it with ``??`` or ``is none``).
    Dates, date-times, times and durations come back as ISO-8601 strings.

    Raises :class:`InputValidationError` listing every problem, one
    :class:`FieldError` per input with ``loc=(*loc_prefix, input_id)``.
    """
    problems = input_id_problems([spec.id for spec in specs])
    if problems:
        errors = [FieldError((*loc_prefix, specs[pos].id), msg) for pos, msg in problems]
        raise InputValidationError(_summary(errors), errors)
    ids = frozenset(spec.id for spec in specs)
    groups = frozenset(".".join(spec.path[:n]) for spec in specs for n in range(1, len(spec.path)))
    given: dict[str, Any] = {}
    located: list[tuple[str, FieldError]] = []
    if not isinstance(raw, Mapping):
        error = FieldError(loc_prefix, f"expected an object of inputs, got {show_value(raw)}")
        raise InputValidationError(_summary([error]), [error])
    _flatten(raw, ids, groups, "", given, located, loc_prefix)
    values: dict[str, Any] = {}
    for spec in specs:
        loc = (*loc_prefix, spec.id)
        value = given.get(spec.id)
        if value is None:
            value = spec.defaults
        if value is None:
            if spec.required:
                expected = (
                    f"a {spec.type.lower()}" if spec.kind != "SELECT" else "one of the values"
                )
                msg = f"required input {spec.id!r} is missing (expected {expected})"
                located.append((spec.id, FieldError(loc, msg, "missing")))
            else:
                values[spec.id] = None
            continue
        try:
            values[spec.id] = coerce_value(spec, value)
        except InvalidValue as exc:
            located.append((spec.id, FieldError(loc, str(exc))))
    if located:
        errors = [error for _, error in located]
        raise InputValidationError(_summary(errors), errors)
    return _nest(values)


def _summary(errors: Sequence[FieldError]) -> str:
    return "invalid inputs: " + "; ".join(str(error) for error in errors)


InputSpec.model_rebuild()
