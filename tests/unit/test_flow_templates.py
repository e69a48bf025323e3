"""Templates: native rendering, Pebble's ``??``, strictness, sandboxing, error messages."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pausepoint.errors import TemplateError
from pausepoint.flow.templates import (
    check_syntax,
    find_expressions,
    has_templates,
    render,
    render_condition,
)

VARIABLES: dict[str, Any] = {
    "inputs": {"delay": "PT1S", "n": 3, "names": ["a", "b"], "request": {"name": "Rick"}},
    "outputs": {
        "pause": {"onResume": {"asked": "restarted", "nothing": None}},
        "items": {"value": 7},
    },
    "flow": {"id": "approval", "namespace": "company.team"},
    "task": {"id": "log"},
}


def r(value: Any) -> Any:
    return render(value, VARIABLES, where="task 'log'")


def failure(value: Any) -> str:
    with pytest.raises(TemplateError) as caught:
        r(value)
    return caught.value.message


# --- rendering ------------------------------------------------------------------------


def test_plain_strings_come_back_unchanged() -> None:
    text = "no templates here { not } }}"
    assert r(text) is text


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ inputs.n }}", 3),
        ("  {{ inputs.names }}\n", ["a", "b"]),
        ("{{ inputs.request }}", {"name": "Rick"}),
        ("{{ inputs.n > 2 }}", True),
        ("{{inputs.delay}}", "PT1S"),
        ("{{ inputs.names | map('upper') }}", ["A", "B"]),
        ("{{ range(3) }}", [0, 1, 2]),
        ("{{- inputs.n -}}", 3),
    ],
)
def test_a_single_expression_renders_its_native_value(template: str, expected: Any) -> None:
    assert r(template) == expected


def test_mixed_text_renders_a_string() -> None:
    assert r("n={{ inputs.n }} for {{ flow.id }}") == "n=3 for approval"
    assert r("{{ inputs.n }}{{ inputs.n }}") == "33"


def test_statements_and_trailing_newlines_are_kept() -> None:
    text = "{% for name in inputs.names %}{{ name }};{% endfor %}\n"
    assert r(text) == "a;b;\n"


def test_rendering_recurses_into_dicts_and_lists_but_not_keys() -> None:
    value = {"{{ flow.id }}": ["{{ inputs.n }}", {"x": "id={{ flow.id }}"}, 5, None]}
    assert r(value) == {"{{ flow.id }}": [3, {"x": "id=approval"}, 5, None]}


def test_mapping_keys_win_over_dict_methods() -> None:
    assert r("{{ outputs.items.value }}") == 7


def test_json_filters() -> None:
    assert r("{{ inputs.request | json }}") == '{"name":"Rick"}'
    assert r("{{ inputs.names | tojson }}") == '["a","b"]'
    assert r("{{ '{\"a\": 1}' | fromjson }}") == {"a": 1}
    assert r("{{ fromJson('[1]') }}") == [1]


# --- missing values -------------------------------------------------------------------


def test_missing_attribute_names_the_variable_path() -> None:
    assert failure("{{ outputs.missing.value }}") == (
        "task 'log': cannot render '{{ outputs.missing.value }}': "
        "'outputs' has no attribute 'missing'"
    )
    assert "'outputs.pause.onResume' has no attribute 'other'" in failure(
        "x {{ outputs.pause.onResume.other }}"
    )
    assert "'nope' is undefined" in failure("{{ nope }}")
    assert "'inputs.names' has no element 5" in failure("{{ inputs.names[5] }}")


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ outputs.pause.onResume.asked ?? 'MISSING' }}", "restarted"),
        ("{{outputs.pause.onResume.other ?? 'MISSING'}}", "MISSING"),
        ("{{ outputs.nothere.onResume.asked ?? 'MISSING' }}", "MISSING"),
        ("{{ outputs.pause.onResume.nothing ?? 'MISSING' }}", "MISSING"),
        ("{{ a ?? b ?? 'third' }}", "third"),
        ("{{ 'a??b' ?? 'x' }}", "a??b"),
        ("{{ [inputs.zz ?? 1, inputs.n] }}", [1, 3]),
        ("{{ (inputs.zz ?? 'x') | upper }}", "X"),
        ("value: {{ inputs.zz ?? 'dflt' }}!", "value: dflt!"),
        ("{{ {'k': inputs.zz ?? 2} }}", {"k": 2}),
    ],
)
def test_pebble_null_coalescing(template: str, expected: Any) -> None:
    assert r(template) == expected


def test_default_filter_and_is_defined_see_missing_values() -> None:
    assert r("{{ outputs.nothere.value | default('d') }}") == "d"
    assert r("{{ outputs.pause.onResume.other is defined }}") is False


# --- errors and sandbox ---------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ self.__dict__ }}",
        "{{ joiner.__init__.__globals__.os }}",
        "{{ inputs.__class__ }}",
        "{{ (1).__class__.__subclasses__() }}",
        "{{ inputs.names | attr('__class__') }}",
        "{{ '{0.__class__}'.format(inputs) }}",
        "x {{ namespace.__init__ }}",
    ],
)
def test_sandbox_escapes_are_refused(template: str) -> None:
    message = failure(template)
    assert message.startswith("task 'log': ")
    assert "unsafe" in message


@pytest.mark.parametrize("template", ["{{ 'a' * 100000000 }}", "{{ 9 ** 100000 }}"])
def test_resource_hungry_expressions_are_refused(template: str) -> None:
    assert "too large" in failure(template)


def test_no_clock_or_randomness() -> None:
    assert "'lipsum' is undefined" in failure("{{ lipsum() }}")
    # now() is the time of the event being applied, passed in; never the wall clock.
    assert "now() is only available while an execution runs" in failure("{{ now() }}")
    assert render("{{ now() }}", {"__now__": 0.0}, where="t") == "1970-01-01T00:00:00.000Z"


def test_runtime_errors_name_the_template() -> None:
    assert failure("{{ 1 / 0 }}") == (
        "task 'log': cannot render '{{ 1 / 0 }}': ZeroDivisionError: division by zero"
    )


def test_syntax_errors_raise_template_errors() -> None:
    assert "invalid template" in failure("{{ inputs.n ")
    with pytest.raises(TemplateError, match=r"^tasks\[0\].message: invalid template"):
        check_syntax({"a": ["ok {{ x }}", "bad {% if %}"]}, where="tasks[0].message")
    check_syntax({"a": ["ok {{ x ?? 'y' }}", 3, None]}, where="x")


def test_unknown_filters_and_tests_are_syntax_errors() -> None:
    with pytest.raises(TemplateError, match="no filter named 'nosuch'"):
        check_syntax("{{ x | nosuch }}", where="t")
    with pytest.raises(TemplateError, match="no test named 'weird'"):
        check_syntax("{% if x is weird %}{% endif %}", where="t")


def test_find_expressions() -> None:
    value = {"a": "{{ inputs.a }} and {{- outputs.b ?? 'x' -}}", "b": ["{{ '}}' }}", 4]}
    assert find_expressions(value) == ["inputs.a", "outputs.b ?? 'x'", "'}}'"]


# --- conditions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (True, True),
        (False, False),
        ("{{ inputs.n > 2 }}", True),
        ("{{ inputs.n > 5 }}", False),
        ("{{ inputs.names }}", True),
        ("{{ [] }}", False),
        ("true", True),
        (" TRUE ", True),
        ("yes", True),
        ("1", True),
        ("{{ 'True' }}", True),
        ("false", False),
        ("0", False),
        ("", False),
        ("maybe", False),
        ("{{ inputs.n }} > 2", False),
    ],
)
def test_render_condition(condition: Any, expected: bool) -> None:
    assert render_condition(condition, VARIABLES, where="task 'if'") is expected


# --- properties -----------------------------------------------------------------------


@given(st.text(max_size=40))
def test_rendering_any_text_returns_or_raises_template_error(text: str) -> None:
    with contextlib.suppress(TemplateError):
        render(text, VARIABLES, where="t")


@given(st.text(alphabet=st.characters(blacklist_characters="{}%#"), max_size=40))
def test_text_without_template_markers_is_unchanged(text: str) -> None:
    assert render(text, VARIABLES, where="t") == text


@pytest.mark.parametrize(
    ("value", "templated"),
    [
        ({"function": "m:f", "kwargs": {}}, False),
        ({"function": "m:f", "kwargs": {"n": [1, 2.5, None, True, "plain {text}"]}}, False),
        ({"kwargs": {"n": ["a", "{{ inputs.n }}"]}}, True),
        ({"script": "{% if x %}y{% endif %}"}, True),
        (("a", ("b", "{{ c }}")), True),
        ("{{", True),
        (42, False),
    ],
)
def test_has_templates_says_whether_rendering_could_change_a_value(
    value: Any, templated: bool
) -> None:
    assert has_templates(value) is templated
    if not templated:  # rendering it needs no variables and returns an equal copy
        assert render(value, {}, where="t") == value
