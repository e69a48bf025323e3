"""Pebble's expression syntax, translated to what Jinja2 parses.

Kestra's flows are written in Pebble. Most of it is Jinja's syntax already;
what is not is rewritten here, token by token, before Jinja sees a template:

- ``cond ? a : b`` (right-associative, lowest precedence) -> ``(a if cond else b)``
- ``a ?? b ?? c`` -> a call of the coalescing function with every operand
- ``a equals b`` -> ``a == b``; ``list contains x`` -> ``list is contains x``
- ``1..3`` (both ends included) -> ``range(1, 3)`` (Pebble's range, which includes its end)
- ``{% elseif … %}`` -> ``{% elif … %}``

Only ``{{ … }}`` and the expressions of ``{% if/elseif/for/set %}`` are
rewritten; text outside them, and string literals inside them, are left as
they are. The result is handed to Jinja's sandbox, which stays the only
judge of what may run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

COALESCE = "_pp_coalesce"
DEFINED_OR = "_pp_defined_or"

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<number>\d+(?:\.\d+(?!\.))?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\?\?\?|\?\?|\.\.|==|!=|<=|>=|//|\*\*|[-+*/%~<>=!?:,.|()\[\]{}])
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_OPENERS = {"(": ")", "[": "]", "{": "}"}
_OPERAND_ENDS = frozenset({")", "]", "}"})


@dataclass(frozen=True)
class Token:
    kind: str  # space, string, number, name, op, other
    text: str


class PebbleSyntaxError(ValueError):
    """A Pebble construct that cannot be translated (an unbalanced bracket, a lone ``?``)."""


def tokens_of(text: str) -> list[Token]:
    found: list[Token] = []
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        assert kind is not None
        found.append(Token(kind, match.group()))
    return found


def _ends_operand(token: Token | None) -> bool:
    if token is None:
        return False
    return token.kind in ("name", "number", "string", "group") or token.text in _OPERAND_ENDS


def _significant(tokens: list[Token]) -> list[Token]:
    return [token for token in tokens if token.kind != "space"]


# -- the rewrite, one bracket level at a time --------------------------------------------


def _group_end(tokens: list[Token], start: int) -> int:
    """Index of the bracket closing the one at ``start``."""
    depth = 0
    for index in range(start, len(tokens)):
        text = tokens[index].text
        if tokens[index].kind != "op":
            continue
        if text in _OPENERS:
            depth += 1
        elif text in _OPENERS.values():
            depth -= 1
            if depth == 0:
                return index
    raise PebbleSyntaxError(f"unclosed {tokens[start].text!r}")


def _split_top(tokens: list[Token], separator: str) -> list[list[Token]]:
    """``tokens`` split at ``separator`` where it is not inside brackets."""
    parts: list[list[Token]] = [[]]
    depth = 0
    for token in tokens:
        if token.kind == "op" and token.text in _OPENERS:
            depth += 1
        elif token.kind == "op" and token.text in _OPENERS.values():
            depth -= 1
        if depth == 0 and token.kind == "op" and token.text == separator:
            parts.append([])
        else:
            parts[-1].append(token)
    return parts


def _render(tokens: list[Token]) -> str:
    return "".join(token.text for token in tokens).strip()


def _rewrite_words(tokens: list[Token]) -> list[Token]:
    """``equals``, ``contains`` and ``..`` at this level, brackets rewritten recursively."""
    out: list[Token] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token.kind == "op" and token.text in _OPENERS:
            end = _group_end(tokens, index)
            inner = _translate_group(tokens[index + 1 : end], token.text)
            out.append(Token("group", token.text + inner + tokens[end].text))
            index = end + 1
            continue
        previous = next((t for t in reversed(out) if t.kind != "space"), None)
        if token.kind == "op" and token.text == "." and _ends_operand(previous):
            name, after = _digit_attribute(tokens, index + 1)
            if name is not None:
                subscript = name if name.isdigit() else repr(name)  # parents.0, outputs.1-2_t
                out.append(Token("group", f"[{subscript}]"))
                index = after
                continue
        attribute = previous is not None and previous.text in (".", "|")
        if token.kind == "name" and not attribute and _ends_operand(previous):
            if token.text == "equals":
                out.append(Token("op", "=="))
                index += 1
                continue
            if token.text == "contains":
                out.append(Token("op", "is contains"))
                index += 1
                continue
        if token.text == ".." and token.kind == "op":
            out = _range(out, tokens, index)
            index = _after_operand(tokens, index + 1)
            continue
        out.append(token)
        index += 1
    return out


def _digit_attribute(tokens: list[Token], index: int) -> tuple[str | None, int]:
    """An attribute name that starts with a digit (a Kestra task id like ``1-2_return``).

    Pebble reads ``outputs.1-2_return`` as one name; Jinja cannot, so it
    becomes a subscript. Only names right after the dot, with no spaces.
    """
    if index >= len(tokens) or tokens[index].kind != "number" or "." in tokens[index].text:
        return None, index
    parts: list[str] = []
    while index < len(tokens) and (
        tokens[index].kind in ("number", "name") or tokens[index].text == "-"
    ):
        parts.append(tokens[index].text)
        index += 1
    return "".join(parts), index


def _after_operand(tokens: list[Token], index: int) -> int:
    """Index just past the operand (a token or a bracket group) starting at or after ``index``."""
    while index < len(tokens) and tokens[index].kind == "space":
        index += 1
    if index >= len(tokens):
        raise PebbleSyntaxError("'..' needs a value after it")
    if tokens[index].kind == "op" and tokens[index].text in _OPENERS:
        return _group_end(tokens, index) + 1
    if tokens[index].text == "-":
        return _after_operand(tokens, index + 1)
    return index + 1


def _range(out: list[Token], tokens: list[Token], index: int) -> list[Token]:
    """``a..b`` -> ``range(a, b)``: ``a`` is the last operand in ``out``."""
    while out and out[-1].kind == "space":
        out.pop()
    if not out or not _ends_operand(out[-1]):
        raise PebbleSyntaxError("'..' needs a value before it")
    start = out.pop()
    if out and out[-1].text == "-" and (len(out) == 1 or not _ends_operand(out[-2])):
        start = Token("number", "-" + start.text)
        out.pop()
    end_index = _after_operand(tokens, index + 1)
    end = _translate(tokens[index + 1 : end_index])
    out.append(Token("group", f"range({start.text}, {end})"))  # Pebble's range includes its end
    return out


def _ternary(tokens: list[Token]) -> str:
    """One item (no top-level comma): ``c ? a : b`` and ``??`` rewritten."""
    for index, token in enumerate(tokens):
        if token.kind == "op" and token.text == "?":
            condition = tokens[:index]
            rest = tokens[index + 1 :]
            colon = _matching_colon(rest)
            if not _significant(condition):
                raise PebbleSyntaxError("'?' needs a condition before it")
            then, otherwise = rest[:colon], rest[colon + 1 :]
            return f"(({_ternary(then)}) if ({_coalesce(condition)}) else ({_ternary(otherwise)}))"
    return _coalesce(tokens)


def _matching_colon(tokens: list[Token]) -> int:
    """The ``:`` that closes a ternary, skipping those of nested ternaries."""
    pending = 0
    for index, token in enumerate(tokens):
        if token.kind != "op":
            continue
        if token.text == "?":
            pending += 1
        elif token.text == ":":
            if pending == 0:
                return index
            pending -= 1
    raise PebbleSyntaxError("'?' without its ':'")


def _coalesce(tokens: list[Token]) -> str:
    parts = [_defined_or(part) for part in _split_top(tokens, "??")]
    if len(parts) == 1:
        return parts[0]
    if any(not part for part in parts):
        raise PebbleSyntaxError("'??' needs a value on each side")
    return f"{COALESCE}({', '.join(f'({part})' for part in parts)})"


def _defined_or(tokens: list[Token]) -> str:
    """Kestra's ``a ??? b``: ``b`` only when ``a`` is undefined (a None stays None)."""
    parts = [_render(part) for part in _split_top(tokens, "???")]
    if len(parts) == 1:
        return parts[0]
    if any(not part for part in parts):
        raise PebbleSyntaxError("'???' needs a value on each side")
    return f"{DEFINED_OR}({', '.join(f'({part})' for part in parts)})"


def _translate_group(tokens: list[Token], opener: str) -> str:
    """The inside of a bracket group: items by comma; a mapping's items by key and value."""
    words = _rewrite_words(tokens)
    items = _split_top(words, ",")
    rendered: list[str] = []
    for item in items:
        colon = next((n for n, t in enumerate(item) if t.kind == "op" and t.text == ":"), None)
        if opener == "{" and colon is not None:
            rendered.append(f"{_ternary(item[:colon])}: {_ternary(item[colon + 1 :])}")
        elif opener == "[" and len(_split_top(item, ":")) > 1 and not _has_ternary(item):
            rendered.append(":".join(_ternary(part) for part in _split_top(item, ":")))
        else:
            rendered.append(_ternary(item))
    return ", ".join(rendered) if any(rendered) else ""


def _has_ternary(tokens: list[Token]) -> bool:
    return any(token.kind == "op" and token.text == "?" for token in tokens)


def _translate(tokens: list[Token]) -> str:
    words = _rewrite_words(tokens)
    items = _split_top(words, ",")
    return ", ".join(_ternary(item) for item in items)


# -- public ----------------------------------------------------------------------------------


_DIGIT_ATTRIBUTE = re.compile(r"[\w\])]\.\d")


def needs_translation(text: str) -> bool:
    return any(marker in text for marker in ("?", "equals", "contains", "..", "elseif")) or bool(
        _DIGIT_ATTRIBUTE.search(text)
    )


def translate_expression(expression: str) -> str:
    """One Pebble expression (the inside of ``{{ … }}``) as Jinja2 expression text."""
    if not needs_translation(expression):
        return expression
    return _translate(tokens_of(expression))


_TAG = re.compile(
    r"^(?P<head>\s*[-+]?\s*)(?P<name>\w+)(?P<rest>.*?)(?P<tail>\s*[-+]?\s*)$", re.DOTALL
)


def _translate_tag(inner: str) -> str:
    match = _TAG.match(inner)
    if match is None:
        return inner
    head, name, rest, tail = match.group("head", "name", "rest", "tail")
    if name == "elseif":
        name = "elif"
    if name in ("if", "elif"):
        rest = " " + translate_expression(rest)
    elif name == "for" and " in " in rest:
        target, iterable = rest.split(" in ", 1)
        rest = f"{target} in {translate_expression(iterable)}"
    elif name == "set" and "=" in rest:
        target, value = rest.split("=", 1)
        rest = f"{target}= {translate_expression(value)}"
    return f"{head}{name}{rest}{tail}"


def _block_end(source: str, start: int, closer: str) -> int:
    """Index of ``closer`` ending the block that starts at ``start`` (strings skipped), or -1."""
    index = start
    while index < len(source):
        char = source[index]
        if char in "'\"":
            quote, index = char, index + 1
            while index < len(source) and source[index] != quote:
                index += 2 if source[index] == "\\" else 1
            index += 1
        elif source.startswith(closer, index):
            return index
        else:
            index += 1
    return -1


def translate_template(source: str) -> str:
    """A Pebble template as a Jinja2 template: every ``{{ }}`` and ``{% %}`` translated.

    Raises :class:`PebbleSyntaxError` for a construct it cannot translate.
    """
    if not needs_translation(source):
        return source
    out: list[str] = []
    index = 0
    while True:
        starts = [(source.find(opener, index), opener) for opener in ("{{", "{%")]
        found = [(position, opener) for position, opener in starts if position >= 0]
        if not found:
            out.append(source[index:])
            break
        start, opener = min(found)
        closer = "}}" if opener == "{{" else "%}"
        end = _block_end(source, start + 2, closer)
        if end < 0:
            out.append(source[index:])
            break
        inner = source[start + 2 : end]
        if opener == "{{":
            head = inner[:1] if inner[:1] in "-+" else ""
            tail = inner[-1:] if len(inner) > len(head) and inner[-1:] in "-+" else ""
            body = inner[len(head) : len(inner) - len(tail)]
            translated = head + " " + translate_expression(body) + " " + tail
        else:
            translated = _translate_tag(inner)
        out.append(source[index:start] + opener + translated + closer)
        index = end + 2
    return "".join(out)
