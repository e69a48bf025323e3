"""``{{ … }}`` expressions: a sandboxed Jinja2 environment with Kestra conveniences.

Contracts:

- Rendering never does I/O or reads the clock: the environment has no
  filters or globals that could (``lipsum``, which draws random numbers, is
  removed), and attribute access goes through Jinja's sandbox, so
  ``{{ ''.__class__ }}`` and friends fail with "unsafe".
- A missing variable or key is an error naming it (``'outputs' has no
  attribute 'missing'``), but ``| default(…)``, ``is defined`` and Pebble's
  ``??`` still see it as missing rather than failing.
- Keys of a mapping win over its methods: ``outputs.items`` is the output of a
  task called ``items``, not ``dict.items``.
- A string that is exactly one ``{{ expr }}`` renders to the expression's
  native value (list, int, dict, …); anything else renders to a string.
- Every failure raises :class:`~pausepoint.errors.TemplateError` naming
  ``where`` and the template source.
"""

from __future__ import annotations

import contextvars
import functools
import json
import re
import types
from collections.abc import ItemsView, KeysView, Mapping, ValuesView
from typing import Any, NoReturn

from jinja2 import (
    ChainableUndefined,
    StrictUndefined,
    Template,
    TemplateSyntaxError,
    Undefined,
    nodes,
    pass_context,
)
from jinja2.environment import TemplateExpression
from jinja2.exceptions import SecurityError
from jinja2.exceptions import TemplateError as JinjaTemplateError
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from pausepoint.errors import TemplateError
from pausepoint.flow.pebble import (
    COALESCE,
    DEFINED_OR,
    PebbleSyntaxError,
    translate_expression,
    translate_template,
)
from pausepoint.flow.pebble_functions import FILTERS, FUNCTIONS, TESTS, ExpressionError

__all__ = [
    "check_syntax",
    "find_expressions",
    "render",
    "render_condition",
    "syntax_error",
]

_MAX_SEQUENCE_PRODUCT = 1_000_000
_MAX_RENDER_DEPTH = 5
_DEPTH_VARIABLE = "__render_depth__"
_MAX_EXPONENT = 1_000
_TRUE_STRINGS = frozenset({"true", "1", "yes"})
_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>.*)\}\}\s*$", re.DOTALL)

# The variables of the render in progress, so that an error can name the
# variable path (``outputs.pause``) of the object that lacks an attribute.
_current_variables: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "pausepoint_template_variables", default=None
)


def _path_of(target: object, variables: Mapping[str, Any]) -> str | None:
    """The dotted path of container ``target`` inside ``variables`` (breadth first, bounded)."""
    queue: list[tuple[str, Any]] = [(str(name), value) for name, value in variables.items()]
    visited = 0
    while queue and visited < 10_000:
        path, value = queue.pop(0)
        visited += 1
        if value is target:
            return path
        if isinstance(value, Mapping):
            queue.extend((f"{path}.{key}", child) for key, child in value.items())
        elif isinstance(value, list | tuple):
            queue.extend((f"{path}[{index}]", child) for index, child in enumerate(value))
    return None


class _Undefined(ChainableUndefined, StrictUndefined):
    """Strict when used, chainable when accessed: ``a.b.c`` of a missing ``a`` stays undefined.

    Chaining is what lets ``outputs.x.y ?? 'z'`` and ``outputs.x.y | default('z')``
    work when ``outputs.x`` is missing; any real use (printing, comparing,
    iterating) raises with the message of the first missing step.
    """

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        obj = self._undefined_obj
        if self._undefined_hint or obj is None or not isinstance(obj, Mapping | list | tuple):
            return super()._undefined_message
        variables = _current_variables.get()
        path = _path_of(obj, variables) if variables is not None else None
        if path is None:
            return super()._undefined_message
        if isinstance(self._undefined_name, str) and isinstance(obj, Mapping):
            return f"{path!r} has no attribute {self._undefined_name!r}"
        return f"{path!r} has no element {self._undefined_name!r}"


class _Environment(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Mapping) and not isinstance(obj, Undefined):
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                pass
        return super().getattr(obj, attribute)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        """Refuse products and powers large enough to exhaust memory or time."""
        if operator == "**":
            if isinstance(right, int | float) and abs(right) > _MAX_EXPONENT:
                raise SecurityError(f"exponent {right} is too large (limit {_MAX_EXPONENT})")
            return left**right
        for sequence, count in ((left, right), (right, left)):
            if (
                isinstance(sequence, str | list | tuple)
                and isinstance(count, int)
                and len(sequence) * count > _MAX_SEQUENCE_PRODUCT
            ):
                raise SecurityError(
                    f"repeating a sequence {count} times is too large "
                    f"(limit {_MAX_SEQUENCE_PRODUCT} items)"
                )
        return left * right


def _to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _from_json(text: Any) -> Any:
    if not isinstance(text, str | bytes):
        return text
    return json.loads(text)


def _coalesce(*values: Any) -> Any:
    """Pebble's ``a ?? b``: the first value that is neither missing nor None."""
    for value in values[:-1]:
        if not isinstance(value, Undefined) and value is not None:
            return value
    return values[-1]


def _defined_or(*values: Any) -> Any:
    """Kestra's ``a ??? b``: the first value that is not missing (None counts as given)."""
    for value in values[:-1]:
        if not isinstance(value, Undefined):
            return value
    return values[-1]


@pass_context
def _render_again(context: Context, text: Any) -> Any:
    """Kestra's ``render(x)``: render a value that is itself a template (``vars.x``)."""
    if not isinstance(text, str) or not _is_template(text):
        return text
    depth = context.get(_DEPTH_VARIABLE, 0)
    if depth >= _MAX_RENDER_DEPTH:
        raise SecurityError(f"render() nested more than {_MAX_RENDER_DEPTH} deep")
    variables = {**context.get_all(), _DEPTH_VARIABLE: depth + 1}
    expression = _single_expression(text)
    if expression is not None:
        return _native(_compile_expression(expression)(variables))
    return _compile_template(text).render(variables)


def _configure(env: SandboxedEnvironment) -> None:
    env.globals.pop("lipsum", None)
    env.globals[COALESCE] = _coalesce
    env.globals[DEFINED_OR] = _defined_or
    env.globals["fromJson"] = _from_json
    env.globals.update(FUNCTIONS)
    env.globals["render"] = _render_again
    env.filters.update(FILTERS)
    env.tests.update(TESTS)
    for name in ("json", "tojson", "toJson"):
        env.filters[name] = _to_json
    for name in ("fromjson", "fromJson"):
        env.filters[name] = _from_json


_ENV = _Environment(undefined=_Undefined, autoescape=False, keep_trailing_newline=True)
_configure(_ENV)


@functools.lru_cache(maxsize=2048)
def _compile_template(source: str) -> Template:
    return _ENV.from_string(translate_template(source))


@functools.lru_cache(maxsize=2048)
def _compile_expression(expression: str) -> TemplateExpression:
    """A callable returning the expression's native value (whitespace markers dropped)."""
    body = expression[1:] if expression[:1] in "-+" else expression
    body = body[:-1] if body[-1:] in "-+" else body
    return _ENV.compile_expression(translate_expression(body.strip()), undefined_to_none=False)


# --- finding expressions --------------------------------------------------------------


def _skip_string(text: str, start: int) -> int:
    """Index just past the string literal starting at ``start`` (or the end of ``text``)."""
    quote = text[start]
    index = start + 1
    while index < len(text):
        if text[index] == "\\":
            index += 2
            continue
        if text[index] == quote:
            return index + 1
        index += 1
    return len(text)


def _expression_end(text: str, start: int) -> int:
    """Index of the ``}}`` closing the expression that starts at ``start``, or -1."""
    index = start
    while index < len(text):
        char = text[index]
        if char in "'\"":
            index = _skip_string(text, index)
        elif text.startswith("}}", index):
            return index
        else:
            index += 1
    return -1


# --- rendering ------------------------------------------------------------------------


def _is_template(text: str) -> bool:
    return "{{" in text or "{%" in text


def _single_expression(text: str) -> str | None:
    match = _SINGLE_EXPRESSION.match(text)
    if match is None:
        return None
    expression = match.group("expr")
    if "{{" in expression or "{%" in expression or _expression_end(expression, 0) >= 0:
        return None
    return expression


def _shorten(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fail(where: str, source: str, exc: BaseException) -> NoReturn:
    prefix = f"{where}: " if where else ""
    shown = repr(_shorten(source))
    if isinstance(exc, ExpressionError):
        raise TemplateError(f"{prefix}cannot render {shown}: {exc}") from None
    if isinstance(exc, PebbleSyntaxError):
        raise TemplateError(f"{prefix}invalid template {shown}: {exc}") from None
    if isinstance(exc, TemplateSyntaxError):
        raise TemplateError(
            f"{prefix}invalid template {shown}: {exc.message} (line {exc.lineno})"
        ) from None
    if isinstance(exc, SecurityError):
        reason = str(exc)
        if "unsafe" not in reason:
            reason = f"unsafe: {reason}"
        raise TemplateError(f"{prefix}cannot render {shown}: {reason}") from None
    if isinstance(exc, JinjaTemplateError):
        raise TemplateError(f"{prefix}cannot render {shown}: {exc.message}") from None
    raise TemplateError(f"{prefix}cannot render {shown}: {type(exc).__name__}: {exc}") from None


def _native(value: Any) -> Any:
    """A plain Python value: no Undefined, generators and tuples become lists."""
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        return {key: _native(item) for key, item in value.items()}
    if isinstance(
        value, list | tuple | range | types.GeneratorType | KeysView | ValuesView | ItemsView
    ):
        return [_native(item) for item in value]
    return value


def as_text(value: Any) -> str:
    """A value as Kestra's templates print it: JSON for collections and booleans."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool | dict | list):
        return _to_json(value)
    return str(value)


def _render_string(
    text: str, variables: Mapping[str, Any], where: str, *, as_string: bool = False
) -> Any:
    token = _current_variables.set(variables)
    try:
        expression = _single_expression(text)
        if expression is not None:
            value = _native(_compile_expression(expression)(variables))
            return as_text(value) if as_string else value
        return _compile_template(text).render(variables)
    except Exception as exc:  # every failure becomes a TemplateError naming the template
        _fail(where, text, exc)
    finally:
        _current_variables.reset(token)


def render(value: Any, variables: Mapping[str, Any], *, where: str, as_string: bool = False) -> Any:
    """Render every string in ``value`` (recursing into dicts and lists).

    Strings without ``{{``/``{%`` come back unchanged. A string that is
    exactly one ``{{ expr }}`` (whitespace around it allowed) returns the
    expression's native value — or, with ``as_string``, its text as Kestra
    prints it; other templates return a string. Dict keys are not rendered.
    Raises :class:`TemplateError` naming ``where`` (e.g. ``task 'log'``) and
    the template.
    """
    if isinstance(value, str):
        if not _is_template(value):
            return value
        return _render_string(value, variables, where, as_string=as_string)
    if isinstance(value, Mapping):
        return {
            key: render(item, variables, where=where, as_string=as_string)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [render(item, variables, where=where, as_string=as_string) for item in value]
    return value


def has_templates(value: Any) -> bool:
    """Whether ``render`` could change ``value``: some string in it is a template."""
    if isinstance(value, str):
        return _is_template(value)
    if isinstance(value, Mapping):
        return any(has_templates(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(has_templates(item) for item in value)
    return False


def render_condition(value: Any, variables: Mapping[str, Any], *, where: str) -> bool:
    """Render an ``if`` condition to a bool.

    A native value is judged by Python truthiness (``{{ x > 1 }}``, a
    non-empty list, …). A string is true only when it is ``true``, ``1`` or
    ``yes`` (any case, surrounding spaces ignored); every other string —
    ``false``, ``0``, ``""``, but also ``maybe`` — is false.
    """
    result = render(value, variables, where=where)
    if isinstance(result, str):
        return result.strip().lower() in _TRUE_STRINGS
    return bool(result)


# --- static checks --------------------------------------------------------------------


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [text for item in value.values() for text in _strings(item)]
    if isinstance(value, list | tuple):
        return [text for item in value for text in _strings(item)]
    return []


def find_expressions(value: Any) -> list[str]:
    """The ``{{ … }}`` expressions in ``value``'s strings, stripped, in order."""
    found: list[str] = []
    for text in _strings(value):
        index = 0
        while (start := text.find("{{", index)) >= 0:
            end = _expression_end(text, start + 2)
            if end < 0:
                break
            found.append(text[start + 2 : end].strip("-+ \t\r\n"))
            index = end + 2
    return found


def syntax_error(text: str) -> str | None:
    """Why template ``text`` cannot compile, or None when it can (or is no template).

    Parses without generating code (fast enough for every string of a large
    flow) and also reports unknown filters and tests, which Jinja would only
    notice when compiling.
    """
    if not _is_template(text):
        return None
    try:
        tree = _ENV.parse(translate_template(text))
        for node in tree.find_all((nodes.Filter, nodes.Test)):
            known = _ENV.filters if isinstance(node, nodes.Filter) else _ENV.tests
            if node.name not in known:
                kind = "filter" if isinstance(node, nodes.Filter) else "test"
                return f"invalid template {_shorten(text)!r}: no {kind} named {node.name!r}"
    except TemplateSyntaxError as exc:
        return f"invalid template {_shorten(text)!r}: {exc.message} (line {exc.lineno})"
    except PebbleSyntaxError as exc:
        return f"invalid template {_shorten(text)!r}: {exc}"
    except Exception as exc:  # a parser limit hit by hostile input is a bad template too
        return f"invalid template {_shorten(text)!r}: {type(exc).__name__}: {exc}"
    return None


def check_syntax(value: Any, *, where: str) -> None:
    """Raise :class:`TemplateError` naming ``where`` if a string in ``value`` does not compile."""
    for text in _strings(value):
        problem = syntax_error(text)
        if problem is not None:
            prefix = f"{where}: " if where else ""
            raise TemplateError(prefix + problem)
