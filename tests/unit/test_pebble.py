"""Kestra's Pebble expressions, rendered the way Kestra renders them, in pausepoint's sandbox."""

from __future__ import annotations

from typing import Any

import pytest

from pausepoint.errors import TemplateError
from pausepoint.flow.pebble import translate_template
from pausepoint.flow.templates import render, syntax_error

VARIABLES: dict[str, Any] = {
    "inputs": {"n": 5, "s": "Hello World", "none": None, "items": [3, 1, 2], "empty": ""},
    "outputs": {"step": {"value": "4", "vars": {"status": "done"}}},
    "vars": {"greeting": "hi {{ inputs.s }}", "raw": "plain"},
    "secrets": {"TOKEN": "s3cr3t"},
    "__now__": 1_700_000_000.0,  # 2023-11-14T22:13:20Z
}


def rendered(template: str) -> Any:
    return render(template, VARIABLES, where="t")


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        # ternary, nested, with ?? and inside brackets
        ("{{ inputs.n > 3 ? 'big' : 'small' }}", "big"),
        ("{{ inputs.n > 9 ? 'big' : inputs.n > 4 ? 'mid' : 'small' }}", "mid"),
        ("{{ (inputs.missing ?? 0) > 3 ? 'a?b' : 'c:d' }}", "c:d"),
        ("{{ [inputs.n > 1 ? 1 : 2, 3] }}", [1, 3]),
        ("{{ {'k': inputs.n > 1 ? 'y' : 'n'} }}", {"k": "y"}),
        ("{{ inputs.items[0:2] }}", [3, 1]),
        ("x={{ inputs.none ?? 'dflt' }}", "x=dflt"),
        ("{{ inputs.missing ?? inputs.none ?? 'last' }}", "last"),
        # ??? replaces only what is undefined: a None stays None
        ("{{ inputs.missing ??? 'dflt' }}", "dflt"),
        ("{{ inputs.none ??? 'dflt' }}", None),
        ("{{ inputs.missing ??? inputs.none ?? 'last' }}", "last"),
        # operators
        ("{{ inputs.s equals 'Hello World' }}", True),
        ("{{ inputs.items contains 2 }}", True),
        ("{{ inputs.s contains 'World' }}", True),
        ("{{ 1..3 }}", [1, 2, 3]),
        ("{% for i in 1..3 %}{{ i }}{% endfor %}", "123"),
        ("{% if inputs.n equals 4 %}a{% elseif inputs.n equals 5 %}b{% else %}c{% endif %}", "b"),
        ("{% set x = inputs.n > 1 ? 'y' : 'n' %}{{ x }}", "y"),
        # tests
        ("{{ '{\"a\": 1}' is json }}", True),
        ("{{ 'nope' is json }}", False),
        ("{{ inputs.none is null }}", True),
        ("{{ inputs.empty is empty }}", True),
        ("{{ inputs.missing is defined }}", False),
        ("{{ inputs is map }}", True),
        ("{{ null }}", None),
        # filters
        ("{{ inputs.s | lower }}", "hello world"),
        ("{{ inputs.s | replace({'Hello': 'Bye', 'World': 'all'}) }}", "Bye all"),
        ("{{ inputs.s | split(' ') | first }}", "Hello"),
        ("{{ inputs.s | substringAfter(' ') }}", "World"),
        ("{{ inputs.s | substringBefore(' ') }}", "Hello"),
        ("{{ inputs.s | startsWith('Hell') }}", True),
        ("{{ inputs.s | abbreviate(8) }}", "Hello..."),
        ("{{ inputs.s | slice(0, 5) }}", "Hello"),
        ("{{ inputs.items | sort }}", [1, 2, 3]),
        ("{{ inputs.items | rsort }}", [3, 2, 1]),
        ("{{ inputs.items | length }}", 3),
        ("{{ [[1, 2], [3]] | flatten }}", [1, 2, 3]),
        ("{{ [1, 1, 2] | distinct }}", [1, 2]),
        ("{{ [1, 2, 3] | chunk(2) }}", [[1, 2], [3]]),
        ("{{ outputs.step | keys }}", ["value", "vars"]),
        ("{{ '42' | number + 1 }}", 43),
        ("{{ 1234.5 | numberFormat('#,##0.00') }}", "1,234.50"),
        ("{{ 'abc' | base64encode }}", "YWJj"),
        ("{{ 'YWJj' | base64decode }}", "abc"),
        ("{{ 'a' | sha256 }}", "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"),
        ("{{ inputs.none | default('x') }}", "x"),
        ("{{ inputs.empty | default('x') }}", "x"),
        ("{{ {'a': 1} | toJson }}", '{"a":1}'),
        ("{{ {'a': [1, 2]} | yaml }}", "a:\n- 1\n- 2"),
        ("{{ \"it's\" | escapeChar('single') }}", "it\\'s"),
        # dates: now() is the event's time; Java patterns
        ("{{ now() }}", "2023-11-14T22:13:20.000Z"),
        ("{{ now() | date('yyyy-MM-dd') }}", "2023-11-14"),
        ("{{ now() | date('dd/MM/yy HH:mm', timeZone='Europe/Paris') }}", "14/11/23 23:13"),
        ("{{ now() | dateAdd(-1, 'DAYS') | date('yyyy-MM-dd') }}", "2023-11-13"),
        ("{{ '2024-01-02T03:04:05Z' | timestampMilli }}", 1704164645000),
        (
            "{{ '2024-01-02' | date('EEE d MMM yyyy', existingFormat='yyyy-MM-dd') }}",
            "Tue 2 Jan 2024",
        ),
        # functions
        ("{{ range(1, 3) }}", [1, 2, 3]),
        ("{{ range(3) }}", [0, 1, 2]),
        ("{{ max(1, 5, 3) }}", 5),
        ("{{ min([4, 2]) }}", 2),
        ("{{ json('{\"a\": [1]}').a }}", [1]),
        ("{{ fromJson('[1, 2]') | length }}", 2),
        ("{{ secret('TOKEN') }}", "s3cr3t"),
        ("{{ render(vars.greeting) }}", "hi Hello World"),
        ("{{ render(vars.raw) }}", "plain"),
    ],
)
def test_pebble_expressions_render_as_kestra_renders_them(template: str, expected: Any) -> None:
    assert rendered(template) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ a ? b }}", "'?' without its ':'"),
        ("{{ ? b : c }}", "'?' needs a condition before it"),
        ("{{ a ?? }}", "'??' needs a value on each side"),
        ("{{ a ??? }}", "'???' needs a value on each side"),
        ("{{ x | nosuchfilter }}", "no filter named 'nosuchfilter'"),
        ("{{ x is nosuchtest }}", "no test named 'nosuchtest'"),
        ("{% if a equals %}x{% endif %}", "invalid template"),
    ],
)
def test_pebble_syntax_errors_are_found_when_the_flow_loads(template: str, message: str) -> None:
    problem = syntax_error(template)
    assert problem is not None
    assert message in problem


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ read('/etc/passwd') }}", "is not an internal storage URI"),
        ("{{ read('kestra:///a/../../etc/passwd') }}", "'..' path segments are not allowed"),
        ("{{ http('http://example.com') }}", "http() calls the network: not allowed"),
        ("{{ printContext() }}", "printContext() would print every variable"),
        ("{{ true ? ''.__class__ : 1 }}", "unsafe"),
        ("{{ inputs.n > 1 ? (''.__class__.__mro__) : 0 }}", "unsafe"),
        ("{{ 'x' * 100000000 if true else 0 }}", "too large"),
        ("{{ secret('NOPE') }}", "secret('NOPE'): no such secret"),
        ("{{ keys(1) }}", "'keys' is undefined"),
        ("{{ 1 | keys }}", "keys: expected a mapping, got int"),
        ("{{ 'x' | date }}", "date: 'x' is not an ISO-8601 date-time"),
        ("{{ now() | date('yyyy', timeZone='Mars/Base') }}", "unknown time zone 'Mars/Base'"),
    ],
)
def test_the_sandbox_holds_through_pebble_syntax(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        rendered(template)
    assert message in str(caught.value)


def test_render_cannot_recurse_forever() -> None:
    looping = {"vars": {"self": "{{ render(vars.self) }}"}}
    with pytest.raises(TemplateError, match="nested more than 5 deep"):
        render("{{ render(vars.self) }}", looping, where="t")


def test_text_outside_expressions_and_strings_inside_them_are_left_alone() -> None:
    source = "Are you sure? {{ 'a ? b : c equals d' }} yes: {{ inputs.n }}"
    assert translate_template(source).startswith("Are you sure? {{ ")
    assert rendered(source) == "Are you sure? a ? b : c equals d yes: 5"
