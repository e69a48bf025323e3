"""One raw value -> the JSON-serialisable value of its input type.

Raw values are strings from the CLI (``-i approved=true``) or JSON values from
the API; each type has one coercer, and :func:`coerce_value` also checks the
spec's bounds. Dates, date-times, times and durations come back as ISO-8601
strings.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import reprlib
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import jsonschema

from pausepoint.errors import FlowError, InputValidationError
from pausepoint.flow.durations import format_duration, parse_duration
from pausepoint.flow.yaml_document import load_yaml_data

if TYPE_CHECKING:
    from pausepoint.flow.inputs import InputSpec

_EMAIL = re.compile(r"^[^@\s]+@[^@\s.][^@\s]*\.[^@\s]+$")
_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*$")
_INTEGER = re.compile(r"^[+-]?\d+$")
_LARGEST_FLOAT = sys.float_info.max
# JSON values nest at most as deep as a flow document may: everything downstream
# (state snapshots, views, events) copies and serialises them recursively.
MAX_VALUE_DEPTH = 100
_TRUE = frozenset({"true", "yes", "y", "on", "1"})
_FALSE = frozenset({"false", "no", "n", "off", "0"})


class InvalidValue(ValueError):
    """A raw value that does not fit its input; the message says what was expected."""


_CONTAINER_REPR = reprlib.Repr()
_CONTAINER_REPR.maxlevel = 3
_CONTAINER_REPR.maxstring = _CONTAINER_REPR.maxother = 40


def show_value(value: Any) -> str:
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
        raise InvalidValue(f"expected a string, got {type(value).__name__}")
    if spec.validator is not None and re.fullmatch(spec.validator, text) is None:
        # Never echo a secret back in an error message.
        shown = "the value" if spec.kind == "SECRET" else show_value(text)
        raise InvalidValue(f"{shown} does not match the pattern {spec.validator!r}")
    return text


def _as_int(value: Any, spec: InputSpec) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INTEGER.match(value.strip()) and len(value) < 400:
        return int(value.strip())
    raise InvalidValue(f"expected an integer, got {show_value(value)}")


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
        raise InvalidValue(f"expected a number, got {show_value(value)}")
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
    raise InvalidValue(f"expected a boolean (true or false), got {show_value(value)}")


def _as_date(value: Any, spec: InputSpec) -> str:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            pass
    raise InvalidValue(f"expected a date (YYYY-MM-DD), got {show_value(value)}")


def _as_datetime(value: Any, spec: InputSpec) -> str:
    moment: dt.datetime | None = value if isinstance(value, dt.datetime) else None
    if isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            moment = None
    if moment is None:
        raise InvalidValue(
            f"expected a date-time (ISO-8601, e.g. 2042-07-01T09:30:00Z), got {show_value(value)}"
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
    raise InvalidValue(f"expected a time (HH:MM or HH:MM:SS), got {show_value(value)}")


def _as_duration(value: Any, spec: InputSpec) -> str:
    if isinstance(value, dt.timedelta):
        return format_duration(value.total_seconds())
    if isinstance(value, str):
        try:
            return format_duration(parse_duration(value))
        except ValueError:
            pass
    raise InvalidValue(
        f"expected an ISO-8601 duration (e.g. PT30S, PT5M, P1D), got {show_value(value)}"
    )


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
    raise InvalidValue(f"expected one of {listed}, got {show_value(value)}")


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
                raise InvalidValue(f"expected a JSON array, got {show_value(value)}") from None
            if isinstance(parsed, list):
                return parsed
        return [part.strip() for part in text.split(",")] if text else []
    raise InvalidValue(f"expected a list, got {show_value(value)}")


def _as_multiselect(value: Any, spec: InputSpec) -> list[Any]:
    chosen: list[Any] = []
    for item in _as_list(value):
        choice = _as_choice(item, spec)
        if choice not in chosen:
            chosen.append(choice)
    return chosen


def _as_array(value: Any, spec: InputSpec) -> list[Any]:
    item_spec = spec.item_spec()
    items: list[Any] = []
    for position, item in enumerate(_as_list(value)):
        try:
            items.append(coerce_value(item_spec, item))
        except InvalidValue as exc:
            raise InvalidValue(f"item {position}: {exc}") from None
    return items


def _as_json(value: Any, spec: InputSpec) -> Any:
    too_deep = InvalidValue(f"expected a JSON value nested at most {MAX_VALUE_DEPTH} levels deep")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except RecursionError:
            raise too_deep from None
        except ValueError as exc:
            raise InvalidValue(f"expected JSON text, got {show_value(value)} ({exc})") from None
    if _nesting(value, MAX_VALUE_DEPTH) > MAX_VALUE_DEPTH:
        raise too_deep
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise InvalidValue(f"expected a JSON value, got {show_value(value)}") from None
    return value


def _as_json_checked(value: Any, spec: InputSpec) -> Any:
    """JSON, and (with ``jsonSchema``) a value that schema accepts."""
    value = _as_json(value, spec)
    schema = spec.json_schema
    if isinstance(schema, dict):
        validator = jsonschema.validators.validator_for(schema)(schema)
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
        if error is not None:
            where = "/".join(str(part) for part in error.absolute_path)
            raise InvalidValue(
                f"does not match its jsonSchema{f' at {where}' if where else ''}: {error.message}"
            )
    return value


def _as_mapping(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise InvalidValue(f"expected a JSON object, got {show_value(value)} ({exc})") from None
    return value


def _nested_errors(error: InputValidationError) -> str:
    return "; ".join(str(item) for item in error.errors)


def _as_object(value: Any, spec: InputSpec) -> dict[str, Any]:
    """OBJECT: a mapping whose fields are checked as inputs (its ``properties``)."""
    from pausepoint.flow.inputs import coerce_inputs

    value = _as_mapping(value)
    if not isinstance(value, dict):
        raise InvalidValue(f"expected an object, got {show_value(value)}")
    try:
        return coerce_inputs(spec.properties or [], value, loc_prefix=())
    except InputValidationError as exc:
        raise InvalidValue(_nested_errors(exc)) from None


def _as_table(value: Any, spec: InputSpec) -> list[dict[str, Any]]:
    """TABLE: rows, each a mapping whose cells are checked as inputs (its ``columns``)."""
    from pausepoint.flow.inputs import coerce_inputs

    value = _as_mapping(value)
    if not isinstance(value, list):
        raise InvalidValue(f"expected a list of rows, got {show_value(value)}")
    rows = spec.rows
    if rows is not None and rows.min is not None and len(value) < rows.min:
        raise InvalidValue(f"expected at least {rows.min} rows, got {len(value)}")
    if rows is not None and rows.max is not None and len(value) > rows.max:
        raise InvalidValue(f"expected at most {rows.max} rows, got {len(value)}")
    table = []
    for position, row in enumerate(value):
        if not isinstance(row, dict):
            raise InvalidValue(f"row {position}: expected an object, got {show_value(row)}")
        try:
            table.append(coerce_inputs(spec.columns or [], row, loc_prefix=()))
        except InputValidationError as exc:
            raise InvalidValue(f"row {position}: {_nested_errors(exc)}") from None
    return table


def _as_yaml(value: Any, spec: InputSpec) -> Any:
    if not isinstance(value, str):
        return _as_json(value, spec)
    try:
        return load_yaml_data(value, source="<input>")
    except FlowError as exc:
        raise InvalidValue(f"expected YAML text: {exc.message}") from None


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
    raise InvalidValue(f"expected a URI (e.g. https://example.com/path), got {show_value(value)}")


def _as_email(value: Any, spec: InputSpec) -> str:
    if isinstance(value, str) and _EMAIL.match(value.strip()):
        return value.strip()
    raise InvalidValue(f"expected an email address, got {show_value(value)}")


def _as_file(value: Any, spec: InputSpec) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise InvalidValue(f"expected a file path or URI, got {show_value(value)}")


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
    "JSON": _as_json_checked,
    "YAML": _as_yaml,
    "URI": _as_uri,
    "EMAIL": _as_email,
    "ARRAY": _as_array,
    "FILE": _as_file,
    "OBJECT": _as_object,
    "TABLE": _as_table,
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
        raise InvalidValue(f"expected at least {spec.min}, got {show_value(value)}")
    if spec.max is not None and key > _bound_key(spec, coerce_value(bare, spec.max)):
        raise InvalidValue(f"expected at most {spec.max}, got {show_value(value)}")
    if spec.after is not None and key <= _bound_key(spec, coerce_value(bare, spec.after)):
        raise InvalidValue(f"expected a value after {spec.after}, got {show_value(value)}")
    if spec.before is not None and key >= _bound_key(spec, coerce_value(bare, spec.before)):
        raise InvalidValue(f"expected a value before {spec.before}, got {show_value(value)}")


def coerce_value(spec: InputSpec, value: Any, *, check_bounds: bool = True) -> Any:
    """Coerce one raw value to ``spec``'s type; raises ``ValueError`` saying what was expected."""
    coerced = _COERCERS[spec.kind](value, spec)
    if check_bounds and (spec.min, spec.max, spec.after, spec.before) != (None,) * 4:
        _check_bounds(spec, coerced)
    return coerced
