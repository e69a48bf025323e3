"""Secret masking: no value of a secret reaches a checkpoint, an event or a view.

Two kinds of values are masked. Secrets (``EngineEnv.secrets``) are never
stored: the engine masks every written form of them in whatever a task run
records. SECRET-typed inputs are stored where the flow reads them (the
execution's inputs, a Pause task's onResume outputs) and shown nowhere: views
and events redact them by their spec, and every masker of the execution masks
them wherever they were copied to (``state["secret_values"]`` lists them).
"""

from __future__ import annotations

import base64
import copy
import functools
import html
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

from pausepoint.flow.inputs import INPUT_TYPES, InputSpec

__all__ = [
    "MASK",
    "SCRUB_MIN_LENGTH",
    "Masker",
    "masker",
    "redact_secret_inputs",
    "scrub",
    "secret_input_values",
    "shown_pause_outputs",
    "written_forms",
]

MASK = "******"
SCRUB_MIN_LENGTH = 4  # shorter values would mask ordinary words


def written_forms(value: str) -> frozenset[str]:
    """The ways ``value`` gets written inside other text, ``value`` itself included.

    A task's outputs hold a secret as it went out: percent-encoded in a URL or a
    form, escaped inside a JSON body (once, or twice when that body is itself
    kept as a JSON string), HTML-escaped, quoted by ``repr`` in an error message,
    or base64-encoded (whole, as a token or a header value is).
    """
    raw = value.encode(errors="surrogatepass")
    json_escaped = json.dumps(value)[1:-1]
    return frozenset(
        {
            value,
            quote(value, errors="surrogatepass"),
            quote(value, safe="", errors="surrogatepass"),
            quote_plus(value, errors="surrogatepass"),
            json_escaped,
            json.dumps(value, ensure_ascii=False)[1:-1],
            json.dumps(json_escaped)[1:-1],
            html.escape(value),
            repr(value)[1:-1],
            base64.b64encode(raw).decode().rstrip("="),
            base64.urlsafe_b64encode(raw).decode().rstrip("="),
        }
    )


class Masker:
    """Replaces every written form of some values with ``******``.

    Values shorter than :data:`SCRUB_MIN_LENGTH` are left alone. All forms are
    matched in one pass per string, longest first, so where a secret contains
    another (or one form another) the longer is masked whole. A number whose
    digits hold a secret becomes the masked string.
    """

    def __init__(self, values: Iterable[str]) -> None:
        needles = {
            form
            for value in values
            if len(value) >= SCRUB_MIN_LENGTH
            for form in written_forms(value)
        }
        self.needles: tuple[str, ...] = tuple(sorted(needles, key=lambda n: (-len(n), n)))
        self._pattern = _alternation(self.needles)
        self._walk = _walker(self._pattern) if self._pattern is not None else None
        # Each needle as it reads inside JSON text (JSON escapes a string character
        # by character, so a string holding a needle dumps to text holding this):
        # one search of a container's dump is far cheaper than visiting each string.
        self._in_json = _alternation(json.dumps(n, ensure_ascii=False)[1:-1] for n in self.needles)

    def __bool__(self) -> bool:
        return self._pattern is not None

    def __call__(self, value: Any) -> Any:
        """``value`` masked: a masked copy, or ``value`` itself when nothing needed masking."""
        if self._pattern is None or value is None:
            return value
        if isinstance(value, str):
            return self._pattern.sub(MASK, value)
        if isinstance(value, dict | list) and self._in_json is not None:
            try:
                text = json.dumps(value, ensure_ascii=False)
            except (TypeError, ValueError):
                pass  # not plain JSON: look at every string
            else:
                if self._in_json.search(text) is None:
                    return value
        assert self._walk is not None
        return self._walk(value)


def _walker(pattern: re.Pattern[str]) -> Callable[[Any], Any]:
    """Masks every string (and number) in a value with ``pattern``, copying what it changes."""
    search, sub = pattern.search, pattern.sub

    def walk(value: Any) -> Any:
        kind = type(value)  # exact types first: this runs for every node of the value
        if kind is str:
            return sub(MASK, value) if search(value) else value
        if kind is dict:
            return {walk(key): walk(item) for key, item in value.items()}
        if kind is list or kind is tuple:
            return [walk(item) for item in value]
        if kind is int or kind is float:
            digits = str(value)
            return sub(MASK, digits) if search(digits) else value
        # Subclasses (an enum member, a named tuple): as their plain JSON type.
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, str):
            return walk(str.__str__(value))
        if isinstance(value, dict):
            return walk(dict(value))
        if isinstance(value, list | tuple):
            return walk(list(value))
        if isinstance(value, int):
            return walk(int(value))
        if isinstance(value, float):
            return walk(float(value))
        return value

    return walk


def _alternation(needles: Iterable[str]) -> re.Pattern[str] | None:
    ordered = sorted(set(needles), key=lambda n: (-len(n), n))
    return re.compile("|".join(map(re.escape, ordered))) if ordered else None


@functools.lru_cache(maxsize=256)  # one per distinct set of values: built once, used every step
def _masker(values: frozenset[str]) -> Masker:
    return Masker(values)


def masker(*sources: Iterable[Any]) -> Masker:
    """The (cached) masker of every string value in ``sources``."""
    if not any(sources):  # no secrets at all, as for most steps: skip building the key
        return _masker(frozenset())
    return _masker(
        frozenset(
            value
            for source in sources
            for value in source
            if isinstance(value, str) and len(value) >= SCRUB_MIN_LENGTH
        )
    )


def scrub(value: Any, secrets: Mapping[str, str]) -> Any:
    """``value`` with every written form of a secret's value replaced by ``******``."""
    return masker(secrets.values())(value)


# -- SECRET-typed inputs ------------------------------------------------------------------


def _secret_specs(specs: Iterable[Any]) -> list[tuple[tuple[str, ...], bool]]:
    """Where SECRET values sit among ``specs``' values: (path, whether it is a list of them)."""
    found = []
    for spec in specs:
        if not isinstance(spec, InputSpec):
            continue  # an approval's own inputs (plain dicts) are never secret
        if spec.kind == "SECRET":
            found.append((spec.path, False))
        elif spec.kind == "ARRAY" and INPUT_TYPES.get(spec.item_type or "") == "SECRET":
            found.append((spec.path, True))
    return found


def _lookup(values: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = values
    for part in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def secret_input_values(specs: Iterable[Any], values: Mapping[str, Any]) -> list[str]:
    """The values that ``specs`` type SECRET (or ARRAY of SECRET) among ``values``."""
    found: list[str] = []
    for path, listed in _secret_specs(specs):
        value = _lookup(values, path)
        for item in (value if isinstance(value, list) else []) if listed else [value]:
            if isinstance(item, str) and item and item not in found:
                found.append(item)
    return found


def redact_secret_inputs(specs: Iterable[Any], values: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``values`` showing ``******`` for every SECRET-typed one (``values`` if none)."""
    secret = _secret_specs(specs)
    if not secret:
        return values
    redacted: dict[str, Any] = copy.deepcopy(values)
    for path, listed in secret:
        parent = _lookup(redacted, path[:-1])
        if not isinstance(parent, dict) or parent.get(path[-1]) is None:
            continue
        value = parent[path[-1]]
        parent[path[-1]] = [MASK for _ in value] if listed and isinstance(value, list) else MASK
    return redacted


def shown_pause_outputs(
    specs: Iterable[Any], outputs: dict[str, Any], mask: Masker
) -> dict[str, Any]:
    """A Pause task run's outputs as views and events show them: SECRET values redacted.

    The run itself keeps the values, since later tasks read them.
    """
    on_resume = outputs.get("onResume")
    if isinstance(on_resume, dict):
        outputs = {**outputs, "onResume": redact_secret_inputs(specs, on_resume)}
    shown: dict[str, Any] = mask(outputs)
    return shown
