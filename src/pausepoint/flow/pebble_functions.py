"""The filters, tests and functions of Kestra's Pebble, for pausepoint's sandbox.

They follow Kestra's documented behaviour, with two rules of pausepoint's
own: nothing reads the clock (``now()`` is the time of the event being
applied, which the engine passes as ``__now__``) and nothing does I/O
(``fileURI()``, ``http()``, ``kv()`` are refused by name; ``read()`` reads internal
storage when the task runs).
Dates are ISO-8601 strings in and out; Java date patterns (``yyyy-MM-dd``)
are translated.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from jinja2 import Undefined, pass_context
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context

from pausepoint.storage import deferred_read, is_deferred

NOW_VARIABLE = "__now__"
_MAX_RENDER_DEPTH = 5


class ExpressionError(ValueError):
    """A filter or function given something it cannot use (shown with the template)."""


# -- values --------------------------------------------------------------------------------


def _is_empty(value: Any) -> bool:
    if isinstance(value, Undefined) or value is None:
        return True
    if isinstance(value, str | list | tuple | dict):
        return len(value) == 0
    return False


def default(value: Any, fallback: Any = "", boolean: bool = False) -> Any:
    """Pebble's default: the fallback when the value is missing, null or empty."""
    if _is_empty(value) or (boolean and not value):
        return fallback
    return value


def _text(value: Any, name: str) -> str:
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if value is None:
        raise ExpressionError(f"{name}: got null, expected a string")
    return value if isinstance(value, str) else str(value)


def number(value: Any, type: str | None = None) -> int | float:
    text = _text(value, "number").strip()
    try:
        parsed: int | float = int(text) if re.fullmatch(r"[-+]?\d+", text) else float(text)
    except ValueError:
        raise ExpressionError(f"number: {text!r} is not a number") from None
    kind = (type or "").upper()
    if kind in ("INT", "INTEGER", "LONG"):
        return int(parsed)
    if kind in ("FLOAT", "DOUBLE", "BIGDECIMAL"):
        return float(parsed)
    return parsed


def number_format(value: Any, pattern: str) -> str:
    """Java's DecimalFormat patterns, the common part: ``#,##0.00`` and friends."""
    amount = float(value)
    decimals = len(pattern.split(".", 1)[1]) if "." in pattern else 0
    grouped = "," in pattern.split(".", 1)[0]
    optional = "." in pattern and pattern.split(".", 1)[1].startswith("#")
    text = f"{amount:{',' if grouped else ''}.{decimals}f}"
    if optional and "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def abbreviate(value: Any, length: int) -> str:
    text = _text(value, "abbreviate")
    if len(text) <= length:
        return text
    return text[: max(length - 3, 0)] + "..."


def capitalize(value: Any) -> str:
    text = _text(value, "capitalize")
    return text[:1].upper() + text[1:]


def chunk(value: Iterable[Any], size: int) -> list[list[Any]]:
    items = list(value)
    if size < 1:
        raise ExpressionError(f"chunk: size must be at least 1, got {size}")
    return [items[start : start + size] for start in range(0, len(items), size)]


def distinct(value: Iterable[Any]) -> list[Any]:
    seen: list[Any] = []
    for item in value:
        if item not in seen:
            seen.append(item)
    return seen


def flatten(value: Iterable[Any]) -> list[Any]:
    flat: list[Any] = []
    for item in value:
        if isinstance(item, list | tuple):
            flat.extend(item)
        else:
            flat.append(item)
    return flat


def indent(value: Any, amount: int, prefix: str = " ") -> str:
    pad = prefix * amount
    lines = _text(value, "indent").split("\n")
    return "\n".join([lines[0], *(pad + line if line else line for line in lines[1:])])


def nindent(value: Any, amount: int, prefix: str = " ") -> str:
    pad = prefix * amount
    return "\n" + "\n".join(
        pad + line if line else line for line in _text(value, "nindent").split("\n")
    )


def replace(value: Any, search: Any, replacement: Any = None, regexp: bool = False) -> str:
    """Pebble's ``replace({'a': 'b'})`` (and ``replace('a', 'b')``, ``regexp=true``)."""
    text = _text(value, "replace")
    pairs = search.items() if isinstance(search, Mapping) else [(search, replacement)]
    for old, new in pairs:
        if new is None:
            raise ExpressionError("replace: give a mapping or a search and a replacement")
        text = re.sub(str(old), str(new), text) if regexp else text.replace(str(old), str(new))
    return text


def slice_(value: Any, start: int = 0, end: int | None = None) -> Any:
    return value[start:end]


def split(value: Any, delimiter: str, limit: int = -1) -> list[str]:
    text = _text(value, "split")
    return text.split(delimiter) if limit <= 0 else text.split(delimiter, limit - 1)


def escape_char(value: Any, type: str = "single") -> str:
    text = _text(value, "escapeChar")
    if type == "double":
        return text.replace("\\", "\\\\").replace('"', '\\"')
    if type == "shell":
        return text.replace("'", "'\\''")
    return text.replace("\\", "\\\\").replace("'", "\\'")


def keys(value: Any) -> list[Any]:
    if not isinstance(value, Mapping):
        raise ExpressionError(f"keys: expected a mapping, got {type(value).__name__}")
    return list(value.keys())


def values(value: Any) -> list[Any]:
    if not isinstance(value, Mapping):
        raise ExpressionError(f"values: expected a mapping, got {type(value).__name__}")
    return list(value.values())


def rsort(value: Iterable[Any]) -> list[Any]:
    return sorted(value, reverse=True)


def to_yaml(value: Any) -> str:
    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True).rstrip("\n")


def _digest(name: str) -> Callable[[Any], str]:
    def digest(value: Any) -> str:
        return hashlib.new(name, _text(value, name).encode()).hexdigest()

    return digest


def base64encode(value: Any) -> str:
    return base64.b64encode(_text(value, "base64encode").encode()).decode()


def base64decode(value: Any) -> str:
    try:
        return base64.b64decode(_text(value, "base64decode"), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        raise ExpressionError("base64decode: not base64 text") from None


def urldecode(value: Any) -> str:
    return urllib.parse.unquote_plus(_text(value, "urldecode"))


def string_test(name: str, check: Callable[[str, str], bool]) -> Callable[[Any, Any], bool]:
    def test(value: Any, other: Any) -> bool:
        return check(_text(value, name), _text(other, name))

    return test


def _substring(name: str, last: bool, after: bool) -> Callable[[Any, Any], str]:
    def cut(value: Any, separator: Any) -> str:
        text, sep = _text(value, name), _text(separator, name)
        index = text.rfind(sep) if last else text.find(sep)
        if index < 0:
            return "" if after else text
        return text[index + len(sep) :] if after else text[:index]

    return cut


_JQ_STEP = re.compile(
    r"\.(?:(?P<name>[A-Za-z_][\w-]*)|\[(?P<index>-?\d+)\]|\[\]|\[\"(?P<quoted>[^\"]+)\"\])?"
)


def jq(value: Any, expression: str) -> list[Any]:
    """Kestra's ``jq`` for path expressions (``.a.b``, ``.[0]``, ``.a[]``, ``.["k"]``).

    Like Kestra's, the result is a list of every value the expression yields.
    Anything beyond paths is refused by name: pausepoint does not embed jq.
    """
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ExpressionError(f"jq: the input is not JSON: {value[:60]!r}") from None
    expression = expression.strip()
    results: list[Any] = [value]
    position = 0
    if expression == ".":
        return results
    while position < len(expression):
        match = _JQ_STEP.match(expression, position)
        if match is None or match.end() == position:
            raise ExpressionError(
                f"jq: {expression!r} is not a path (.a.b, .[0], .a[]); only paths are supported"
            )
        step = match.group()
        following = expression[match.end() : match.end() + 2]
        name = match.group("name") or match.group("quoted")
        index = match.group("index")
        expanded: list[Any] = []
        for item in results:
            if name is not None:
                expanded.append(item.get(name) if isinstance(item, Mapping) else None)
            elif index is not None:
                items = item if isinstance(item, list) else []
                number = int(index)
                expanded.append(items[number] if -len(items) <= number < len(items) else None)
            elif step.endswith("[]"):
                expanded.extend(item.values() if isinstance(item, Mapping) else item or [])
            else:
                expanded.append(item)
        results = expanded
        position = match.end()
        if following.startswith("[") and position < len(expression):
            expression = expression[:position] + "." + expression[position:]
    return results


# -- tests ---------------------------------------------------------------------------------


def is_json(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        json.loads(value)
    except ValueError:
        return False
    return True


def contains(container: Any, item: Any) -> bool:
    if isinstance(container, Undefined) or container is None:
        return False
    if isinstance(container, str):
        return str(item) in container
    if isinstance(container, Mapping):
        return item in container
    if isinstance(item, list | tuple) and not isinstance(container, str):
        return all(element in container for element in item)
    return item in container


# -- dates ---------------------------------------------------------------------------------

_JAVA_FIELD = re.compile(r"'[^']*'|''|([A-Za-z])\1*")


def parse_date(value: Any, existing_format: str | None = None) -> datetime:
    """A date-time from an ISO-8601 string, an epoch number (seconds) or a datetime."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        moment = datetime.fromtimestamp(value, UTC)
    else:
        text = _text(value, "date").strip()
        if existing_format:
            moment = datetime.strptime(text, _strptime_pattern(existing_format))
        else:
            try:
                moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                raise ExpressionError(f"date: {text!r} is not an ISO-8601 date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _zone(name: str | None) -> Any:
    if name is None:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ExpressionError(f"date: unknown time zone {name!r}") from None


def _java_field(moment: datetime, letter: str, width: int) -> str:
    if letter == "y":
        return f"{moment.year % 100:02d}" if width == 2 else f"{moment.year:0{width}d}"
    if letter == "M":
        if width >= 4:
            return moment.strftime("%B")
        if width == 3:
            return moment.strftime("%b")
        return f"{moment.month:0{width}d}"
    if letter == "E":
        return moment.strftime("%A" if width >= 4 else "%a")
    if letter == "S":
        return f"{moment.microsecond:06d}"[:width].ljust(width, "0")
    if letter == "a":
        return moment.strftime("%p")
    if letter in "XxZ":
        offset = moment.utcoffset() or timedelta(0)
        if letter == "X" and offset == timedelta(0):
            return "Z"
        minutes = int(offset.total_seconds()) // 60
        sign = "+" if minutes >= 0 else "-"
        hours, minutes = divmod(abs(minutes), 60)
        return f"{sign}{hours:02d}{':' if width >= 3 else ''}{minutes:02d}"
    if letter == "z":
        return moment.tzname() or ""
    numbers = {
        "d": moment.day,
        "H": moment.hour,
        "h": (moment.hour % 12) or 12,
        "m": moment.minute,
        "s": moment.second,
        "D": moment.timetuple().tm_yday,
    }
    if letter in numbers:
        return f"{numbers[letter]:0{width}d}"
    raise ExpressionError(f"date: pattern letter {letter!r} is not supported")


def format_java(moment: datetime, pattern: str) -> str:
    out: list[str] = []
    index = 0
    for match in _JAVA_FIELD.finditer(pattern):
        out.append(pattern[index : match.start()])
        token = match.group()
        if token == "''":
            out.append("'")
        elif token.startswith("'"):
            out.append(token[1:-1])
        else:
            out.append(_java_field(moment, token[0], len(token)))
        index = match.end()
    out.append(pattern[index:])
    return "".join(out)


def _strptime_pattern(pattern: str) -> str:
    table = {"yyyy": "%Y", "yy": "%y", "MM": "%m", "dd": "%d", "HH": "%H", "mm": "%M"}
    table |= {"ss": "%S", "SSS": "%f", "MMM": "%b", "EEE": "%a"}
    out: list[str] = []
    index = 0
    for match in _JAVA_FIELD.finditer(pattern):
        out.append(pattern[index : match.start()])
        token = match.group()
        if token.startswith("'"):
            out.append(token[1:-1] or "'")
        elif token in table:
            out.append(table[token])
        else:
            raise ExpressionError(f"date: existingFormat {pattern!r}: {token!r} is not supported")
        index = match.end()
    out.append(pattern[index:])
    return "".join(out)


def iso(moment: datetime) -> str:
    text = moment.isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def date(
    value: Any,
    format: str | None = None,
    timeZone: str | None = None,  # Pebble's argument name
    existingFormat: str | None = None,
    locale: str | None = None,
) -> str:
    moment = parse_date(value, existingFormat).astimezone(_zone(timeZone))
    if format is None or format.lower() in ("iso", "iso_offset_date_time"):
        return iso(moment)
    if format.lower() == "iso_local_date":
        return moment.date().isoformat()
    return format_java(moment, format)


_UNITS = {
    "NANOS": timedelta(microseconds=0.001),
    "MICROS": timedelta(microseconds=1),
    "MILLIS": timedelta(milliseconds=1),
    "SECONDS": timedelta(seconds=1),
    "MINUTES": timedelta(minutes=1),
    "HOURS": timedelta(hours=1),
    "HALF_DAYS": timedelta(hours=12),
    "DAYS": timedelta(days=1),
    "WEEKS": timedelta(weeks=1),
}


def date_add(value: Any, amount: int, unit: str) -> str:
    step = _UNITS.get(unit.upper())
    if step is None:
        raise ExpressionError(f"dateAdd: unit {unit!r}; units: {', '.join(_UNITS)}")
    return iso(parse_date(value) + amount * step)


def _timestamp(scale: int) -> Callable[..., int]:
    def timestamp(value: Any, timeZone: str | None = None) -> int:
        return int(parse_date(value).timestamp() * scale)

    return timestamp


@pass_context
def now(context: Context, timeZone: str | None = None) -> str:
    """The time of the event being applied (never the wall clock)."""
    at = context.get(NOW_VARIABLE)
    if not isinstance(at, int | float):
        raise ExpressionError("now() is only available while an execution runs")
    return iso(datetime.fromtimestamp(at, UTC).astimezone(_zone(timeZone)))


# -- functions -----------------------------------------------------------------------------


def pebble_range(start: int, end: int | None = None, step: int = 1) -> range:
    """Pebble's ``range(start, end[, step])`` includes ``end``; ``range(n)`` is Jinja's."""
    if end is None:
        return range(start)
    if step == 0:
        raise ExpressionError("range: step must not be 0")
    return range(start, end + (1 if step > 0 else -1), step)


def maximum(*items: Any) -> Any:
    return max(items[0]) if len(items) == 1 and isinstance(items[0], list) else max(items)


def minimum(*items: Any) -> Any:
    return min(items[0]) if len(items) == 1 and isinstance(items[0], list) else min(items)


@pass_context
def secret(context: Context, name: str) -> str:
    secrets = context.get("secrets")
    if not isinstance(secrets, Mapping) or name not in secrets:
        raise ExpressionError(f"secret({name!r}): no such secret")
    value: str = secrets[name]
    return value


def refused(name: str, why: str) -> Callable[..., Any]:
    def function(*_: Any, **__: Any) -> Any:
        raise SecurityError(f"{name}() {why}: not allowed in pausepoint's expressions")

    return function


REFUSED_FUNCTIONS = {
    "fileURI": "reads files",
    "fileSize": "reads files",
    "fileExists": "reads files",
    "isFileEmpty": "reads files",
    "http": "calls the network",
    "kv": "reads the key-value store",
    "printContext": "would print every variable, secrets included",
}


FILTERS: dict[str, Callable[..., Any]] = {
    "abbreviate": abbreviate,
    "base64encode": base64encode,
    "base64decode": base64decode,
    "capitalize": capitalize,
    "chunk": chunk,
    "date": date,
    "dateAdd": date_add,
    "default": default,
    "distinct": distinct,
    "endsWith": string_test("endsWith", str.endswith),
    "escapeChar": escape_char,
    "flatten": flatten,
    "indent": indent,
    "nindent": nindent,
    "keys": keys,
    "jq": jq,
    "values": values,
    "md5": _digest("md5"),
    "sha1": _digest("sha1"),
    "sha256": _digest("sha256"),
    "sha512": _digest("sha512"),
    "number": number,
    "numberFormat": number_format,
    "replace": replace,
    "rsort": rsort,
    "slice": slice_,
    "split": split,
    "startsWith": string_test("startsWith", str.startswith),
    "substringAfter": _substring("substringAfter", last=False, after=True),
    "substringAfterLast": _substring("substringAfterLast", last=True, after=True),
    "substringBefore": _substring("substringBefore", last=False, after=False),
    "substringBeforeLast": _substring("substringBeforeLast", last=True, after=False),
    "timestamp": _timestamp(1),
    "timestampMilli": _timestamp(1_000),
    "timestampMicro": _timestamp(1_000_000),
    "timestampNano": _timestamp(1_000_000_000),
    "urldecode": urldecode,
    "yaml": to_yaml,
}

TESTS: dict[str, Callable[..., bool]] = {
    "contains": contains,
    "json": is_json,
    "null": lambda value: value is None,
    "empty": _is_empty,
    "map": lambda value: isinstance(value, Mapping),
}


def _json(text: Any) -> Any:
    if isinstance(text, str) and is_deferred(text):
        raise ValueError("json(read(...)): read() gives a file's text only as a value or in text")
    return json.loads(text) if isinstance(text, str | bytes) else text


FUNCTIONS: dict[str, Any] = {
    "now": now,
    "json": _json,
    # Internal storage: the file's text, put in place when the task runs (see storage.py).
    "read": deferred_read,
    "range": pebble_range,
    "max": maximum,
    "min": minimum,
    "secret": secret,
    "null": None,
    **{name: refused(name, why) for name, why in REFUSED_FUNCTIONS.items()},
}
