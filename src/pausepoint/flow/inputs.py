"""Typed inputs: a flow's ``inputs`` and a Pause task's ``onResume``.

An :class:`InputSpec` declares one input (Kestra's input types and property
names). :func:`coerce_inputs` turns raw values — strings from the CLI
(``-i approved=true``) or JSON values from the API — into validated,
JSON-serialisable values, and :func:`inputs_json_schema` describes a set of
inputs for forms and API clients.

Ids may be dotted (``request.name``): the coerced values nest
(``{"request": {"name": ...}}``) so templates read ``inputs.request.name``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import re
import reprlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pausepoint.errors import FieldError, InputValidationError
from pausepoint.flow.durations import format_duration, is_template, parse_duration

INPUT_ID_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_][A-Za-z0-9_\-]*)*$"

# Declared spelling -> the type whose rules apply.
INPUT_TYPES: Mapping[str, str] = {
    "STRING": "STRING",
    "INT": "INT",
    "FLOAT": "FLOAT",
    "BOOLEAN": "BOOLEAN",
    "BOOL": "BOOLEAN",
    "DATE": "DATE",
    "DATETIME": "DATETIME",
    "TIME": "TIME",
    "DURATION": "DURATION",
    "SELECT": "SELECT",
    "ENUM": "SELECT",
    "MULTISELECT": "MULTISELECT",
    "JSON": "JSON",
    "YAML": "YAML",
    "URI": "URI",
    "EMAIL": "EMAIL",
    "SECRET": "SECRET",
    "ARRAY": "ARRAY",
    "FILE": "FILE",
}
ITEM_TYPES = frozenset(INPUT_TYPES) - {"ARRAY", "MULTISELECT", "SELECT", "ENUM", "FILE"}
_ORDERED = frozenset({"INT", "FLOAT", "DURATION"})
_TEMPORAL = frozenset({"DATE", "DATETIME", "TIME"})
_CHOICES = frozenset({"SELECT", "MULTISELECT"})

_EMAIL = re.compile(r"^[^@\s]+@[^@\s.][^@\s]*\.[^@\s]+$")
_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*$")
_INTEGER = re.compile(r"^[+-]?\d+$")
_LARGEST_FLOAT = sys.float_info.max
# JSON values nest at most as deep as a flow document may: everything downstream
# (state snapshots, views, events) copies and serialises them recursively.
MAX_VALUE_DEPTH = 100
_TRUE = frozenset({"true", "yes", "y", "on", "1"})
_FALSE = frozenset({"false", "no", "n", "off", "0"})


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
        if kind in _CHOICES and not self.values:
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
            if kind not in _ORDERED:
                raise ValueError(f"{bound} applies only to INT, FLOAT and DURATION inputs")
            _check(self, value, f"{bound}: ")
        for bound in ("after", "before"):
            value = getattr(self, bound)
            if value is None:
                continue
            if kind not in _TEMPORAL:
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


class _Invalid(ValueError):
    """A raw value that does not fit its input; the message says what was expected."""


def _check(spec: InputSpec, value: Any, prefix: str, *, check_bounds: bool = False) -> None:
    try:
        coerce_value(spec, value, check_bounds=check_bounds)
    except _Invalid as exc:
        raise ValueError(f"{prefix}{exc}") from None


def _is_template_value(value: Any) -> bool:
    return isinstance(value, str) and is_template(value)


_CONTAINER_REPR = reprlib.Repr()
_CONTAINER_REPR.maxlevel = 3
_CONTAINER_REPR.maxstring = _CONTAINER_REPR.maxother = 40


def _show(value: Any) -> str:
    # Containers are shown a few levels deep only: a repr of a deeply nested value
    # would run out of recursion (and its text is useless anyway).
    text = _CONTAINER_REPR.repr(value) if isinstance(value, dict | list | tuple) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _nesting(value: Any, limit: int) -> int:
    """How deep ``value``'s lists and dicts nest (0 for a scalar), counting up to ``limit + 1``."""
    deepest = 0
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list | tuple):
            depth += 1
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            stack.extend(
                (child, depth) for child in (item.values() if isinstance(item, dict) else item)
            )
    return deepest


# --- one coercer per type -------------------------------------------------------------


def _as_string(value: Any, spec: InputSpec) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str | int | float):
        text = str(value)
    elif isinstance(value, dt.date | dt.time):
        text = value.isoformat()
    else:
        raise _Invalid(f"expected a string, got {type(value).__name__}")
    if spec.validator is not None and re.fullmatch(spec.validator, text) is None:
        # Never echo a secret back in an error message.
        shown = "the value" if spec.kind == "SECRET" else _show(text)
        raise _Invalid(f"{shown} does not match the pattern {spec.validator!r}")
    return text


def _as_int(value: Any, spec: InputSpec) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INTEGER.match(value.strip()) and len(value) < 400:
        return int(value.strip())
    raise _Invalid(f"expected an integer, got {_show(value)}")


def _as_float(value: Any, spec: InputSpec) -> float:
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        # An integer beyond the float range is no FLOAT either (float() would overflow).
        number = float(value) if abs(value) <= _LARGEST_FLOAT else None
    elif isinstance(value, str) and len(value) < 400:
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise _Invalid(f"expected a number, got {_show(value)}")
    return number


def _as_bool(value: Any, spec: InputSpec) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise _Invalid(f"expected a boolean (true or false), got {_show(value)}")


def _as_date(value: Any, spec: InputSpec) -> str:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            pass
    raise _Invalid(f"expected a date (YYYY-MM-DD), got {_show(value)}")


def _as_datetime(value: Any, spec: InputSpec) -> str:
    moment: dt.datetime | None = value if isinstance(value, dt.datetime) else None
    if isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            moment = None
    if moment is None:
        raise _Invalid(
            f"expected a date-time (ISO-8601, e.g. 2042-07-01T09:30:00Z), got {_show(value)}"
        )
    # A date-time without an offset is taken as UTC, so that every value is an instant.
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _as_time(value: Any, spec: InputSpec) -> str:
    if isinstance(value, dt.time):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return dt.time.fromisoformat(value.strip()).isoformat()
        except ValueError:
            pass
    raise _Invalid(f"expected a time (HH:MM or HH:MM:SS), got {_show(value)}")


def _as_duration(value: Any, spec: InputSpec) -> str:
    if isinstance(value, dt.timedelta):
        return format_duration(value.total_seconds())
    if isinstance(value, str):
        try:
            return format_duration(parse_duration(value))
        except ValueError:
            pass
    raise _Invalid(f"expected an ISO-8601 duration (e.g. PT30S, PT5M, P1D), got {_show(value)}")


def _as_choice(value: Any, spec: InputSpec) -> Any:
    choices = spec.values or []
    if value in choices and not isinstance(value, bool):
        return value
    if isinstance(value, str | int | float):
        for choice in choices:
            if str(choice) == str(value).strip():
                return choice
        if spec.allow_custom_value and not (isinstance(value, float) and not math.isfinite(value)):
            return value
    listed = ", ".join(repr(choice) for choice in choices)
    raise _Invalid(f"expected one of {listed}, got {_show(value)}")


def _as_list(value: Any) -> list[Any]:
    """A list from a JSON array, a JSON array string or a comma-separated string."""
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except ValueError:
                raise _Invalid(f"expected a JSON array, got {_show(value)}") from None
            if isinstance(parsed, list):
                return parsed
        return [part.strip() for part in text.split(",")] if text else []
    raise _Invalid(f"expected a list, got {_show(value)}")


def _as_multiselect(value: Any, spec: InputSpec) -> list[Any]:
    chosen: list[Any] = []
    for item in _as_list(value):
        choice = _as_choice(item, spec)
        if choice not in chosen:
            chosen.append(choice)
    return chosen


def _as_array(value: Any, spec: InputSpec) -> list[Any]:
    item_spec = InputSpec(id="item", type=spec.item_type or "STRING")
    items: list[Any] = []
    for position, item in enumerate(_as_list(value)):
        try:
            items.append(coerce_value(item_spec, item))
        except _Invalid as exc:
            raise _Invalid(f"item {position}: {exc}") from None
    return items


def _as_json(value: Any, spec: InputSpec) -> Any:
    too_deep = _Invalid(f"expected a JSON value nested at most {MAX_VALUE_DEPTH} levels deep")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except RecursionError:
            raise too_deep from None
        except ValueError as exc:
            raise _Invalid(f"expected JSON text, got {_show(value)} ({exc})") from None
    if _nesting(value, MAX_VALUE_DEPTH) > MAX_VALUE_DEPTH:
        raise too_deep
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise _Invalid(f"expected a JSON value, got {_show(value)}") from None
    return value


def _as_yaml(value: Any, spec: InputSpec) -> Any:
    if not isinstance(value, str):
        return _as_json(value, spec)
    # Imported here: the parser's hardened YAML loader depends on the models,
    # which depend on this module.
    from pausepoint.errors import FlowError
    from pausepoint.flow.parser import load_yaml_data

    try:
        return load_yaml_data(value, source="<input>")
    except FlowError as exc:
        raise _Invalid(f"expected YAML text: {exc.message}") from None


def _as_uri(value: Any, spec: InputSpec) -> str:
    if isinstance(value, str):
        text = value.strip()
        try:
            parts = urlsplit(text)
        except ValueError:
            parts = None
        if (
            parts is not None
            and _URI_SCHEME.match(parts.scheme)
            and (parts.netloc or parts.path)
            and not any(char.isspace() for char in text)
        ):
            return text
    raise _Invalid(f"expected a URI (e.g. https://example.com/path), got {_show(value)}")


def _as_email(value: Any, spec: InputSpec) -> str:
    if isinstance(value, str) and _EMAIL.match(value.strip()):
        return value.strip()
    raise _Invalid(f"expected an email address, got {_show(value)}")


def _as_file(value: Any, spec: InputSpec) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise _Invalid(f"expected a file path or URI, got {_show(value)}")


_COERCERS: Mapping[str, Callable[[Any, InputSpec], Any]] = {
    "STRING": _as_string,
    "SECRET": _as_string,
    "INT": _as_int,
    "FLOAT": _as_float,
    "BOOLEAN": _as_bool,
    "DATE": _as_date,
    "DATETIME": _as_datetime,
    "TIME": _as_time,
    "DURATION": _as_duration,
    "SELECT": _as_choice,
    "MULTISELECT": _as_multiselect,
    "JSON": _as_json,
    "YAML": _as_yaml,
    "URI": _as_uri,
    "EMAIL": _as_email,
    "ARRAY": _as_array,
    "FILE": _as_file,
}


def _bound_key(spec: InputSpec, value: Any) -> Any:
    """A comparable form of a coerced value (or of a min/max/after/before bound)."""
    kind = spec.kind
    if kind == "DURATION":
        return parse_duration(value)
    if kind == "DATETIME":
        return dt.datetime.fromisoformat(value)
    if kind == "DATE":
        return dt.date.fromisoformat(value)
    if kind == "TIME":
        return dt.time.fromisoformat(value)
    return value


def _check_bounds(spec: InputSpec, value: Any) -> None:
    key = _bound_key(spec, value)
    bare = spec.model_copy(update={"min": None, "max": None, "after": None, "before": None})
    if spec.min is not None and key < _bound_key(spec, coerce_value(bare, spec.min)):
        raise _Invalid(f"expected at least {spec.min}, got {_show(value)}")
    if spec.max is not None and key > _bound_key(spec, coerce_value(bare, spec.max)):
        raise _Invalid(f"expected at most {spec.max}, got {_show(value)}")
    if spec.after is not None and key <= _bound_key(spec, coerce_value(bare, spec.after)):
        raise _Invalid(f"expected a value after {spec.after}, got {_show(value)}")
    if spec.before is not None and key >= _bound_key(spec, coerce_value(bare, spec.before)):
        raise _Invalid(f"expected a value before {spec.before}, got {_show(value)}")


def coerce_value(spec: InputSpec, value: Any, *, check_bounds: bool = True) -> Any:
    """Coerce one raw value to ``spec``'s type; raises ``ValueError`` saying what was expected."""
    coerced = _COERCERS[spec.kind](value, spec)
    if check_bounds and (spec.min, spec.max, spec.after, spec.before) != (None,) * 4:
        _check_bounds(spec, coerced)
    return coerced


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
        error = FieldError(loc_prefix, f"expected an object of inputs, got {_show(raw)}")
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
        except _Invalid as exc:
            located.append((spec.id, FieldError(loc, str(exc))))
    if located:
        errors = [error for _, error in located]
        raise InputValidationError(_summary(errors), errors)
    return _nest(values)


def _summary(errors: Sequence[FieldError]) -> str:
    return "invalid inputs: " + "; ".join(str(error) for error in errors)


# --- JSON Schema ----------------------------------------------------------------------

_FORMATS = {
    "DATE": "date",
    "DATETIME": "date-time",
    "TIME": "time",
    "DURATION": "duration",
    "URI": "uri",
    "EMAIL": "email",
}
_JSON_TYPES = {
    "STRING": "string",
    "SECRET": "string",
    "INT": "integer",
    "FLOAT": "number",
    "BOOLEAN": "boolean",
    "DATE": "string",
    "DATETIME": "string",
    "TIME": "string",
    "DURATION": "string",
    "URI": "string",
    "EMAIL": "string",
    "FILE": "string",
}


def _type_schema(spec: InputSpec) -> dict[str, Any]:
    kind = spec.kind
    schema: dict[str, Any] = {}
    if kind in _JSON_TYPES:
        schema["type"] = _JSON_TYPES[kind]
    if kind in _FORMATS:
        schema["format"] = _FORMATS[kind]
    if kind == "SELECT":
        if spec.allow_custom_value:
            schema["examples"] = list(spec.values or [])
        else:
            schema["enum"] = list(spec.values or [])
    elif kind == "MULTISELECT":
        schema.update(type="array", items={"enum": list(spec.values or [])}, uniqueItems=True)
    elif kind == "ARRAY":
        item = _type_schema(InputSpec(id="item", type=spec.item_type or "STRING"))
        schema.update(type="array", items=item)
    elif kind == "SECRET":
        schema.update(writeOnly=True, format="password")
    elif kind == "YAML":
        schema["contentMediaType"] = "application/yaml"
    elif kind == "FILE":
        schema["contentMediaType"] = "application/octet-stream"
    if spec.validator is not None:
        schema["pattern"] = f"^(?:{spec.validator})$"
    if kind in ("INT", "FLOAT"):
        bare = spec.model_copy(update={"min": None, "max": None})
        if spec.min is not None:
            schema["minimum"] = coerce_value(bare, spec.min)
        if spec.max is not None:
            schema["maximum"] = coerce_value(bare, spec.max)
    return schema


def _property_schema(spec: InputSpec) -> dict[str, Any]:
    schema: dict[str, Any] = {"title": spec.display_name or spec.path[-1]}
    if spec.description:
        schema["description"] = spec.description
    schema.update(_type_schema(spec))
    if spec.defaults is not None and spec.kind != "SECRET":
        with contextlib.suppress(ValueError):
            schema["default"] = coerce_value(spec, spec.defaults)
    schema["x-pausepoint-type"] = spec.type
    return schema


def _object_schema() -> dict[str, Any]:
    return {"type": "object", "properties": {}, "required": [], "additionalProperties": False}


def inputs_json_schema(
    specs: Sequence[InputSpec], *, title: str | None = None, description: str | None = None
) -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) object describing what :func:`coerce_inputs` accepts.

    - one property per input, nested ``type: object`` properties for dotted ids;
    - ``required`` lists the inputs that are required and have no ``defaults``
      (a group is required when one of its members is);
    - each property has ``title`` (``displayName`` or the id), ``description``,
      ``default`` (the coerced default; never for SECRET), ``x-pausepoint-type``
      (the declared type, e.g. ``SELECT``, for picking a widget) and per type:
      ``format`` (``date``, ``date-time``, ``time``, ``duration``, ``uri``,
      ``email``), ``enum`` for SELECT/ENUM, ``type: array`` with ``items.enum``
      and ``uniqueItems`` for MULTISELECT, ``items`` from ``itemType`` for ARRAY,
      ``writeOnly`` with ``format: password`` for SECRET, ``pattern`` from
      ``validator``, ``minimum``/``maximum`` for INT and FLOAT. JSON and YAML
      inputs accept any value.
    """
    root = _object_schema()
    root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    if title:
        root["title"] = title
    if description:
        root["description"] = description
    for spec in specs:
        target = root
        parents = spec.path[:-1]
        needed = spec.required and spec.defaults is None
        for part in parents:
            if needed and part not in target["required"]:
                target["required"].append(part)
            target = target["properties"].setdefault(part, _object_schema())
        target["properties"][spec.path[-1]] = _property_schema(spec)
        if needed:
            target["required"].append(spec.path[-1])
    return root
