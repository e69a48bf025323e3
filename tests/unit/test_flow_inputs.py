"""Typed inputs: coercion from CLI strings and JSON values, defaults, nesting, schema."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from pausepoint.errors import InputValidationError
from pausepoint.flow.inputs import InputSpec, coerce_inputs, inputs_json_schema


def spec(input_id: str = "x", type_: str = "STRING", **extra: Any) -> InputSpec:
    return InputSpec.model_validate({"id": input_id, "type": type_, **extra})


def one(type_: str, value: Any, **extra: Any) -> Any:
    return coerce_inputs([spec("x", type_, **extra)], {"x": value})["x"]


def problem(type_: str, value: Any, **extra: Any) -> str:
    with pytest.raises(InputValidationError) as caught:
        one(type_, value, **extra)
    assert len(caught.value.errors) == 1
    error = caught.value.errors[0]
    assert error.loc == ("inputs", "x")
    return error.msg


# --- valid values, from CLI strings and from JSON ------------------------------------

VALID = [
    ("STRING", "hello", "hello"),
    ("STRING", "", ""),
    ("STRING", 42, "42"),
    ("SECRET", "s3cret", "s3cret"),
    ("INT", "42", 42),
    ("INT", " -7 ", -7),
    ("INT", 42, 42),
    ("INT", 3.0, 3),
    ("FLOAT", "2.5", 2.5),
    ("FLOAT", 2, 2.0),
    ("FLOAT", 2.5, 2.5),
    ("BOOLEAN", "true", True),
    ("BOOLEAN", "FALSE", False),
    ("BOOLEAN", "Yes", True),
    ("BOOLEAN", "no", False),
    ("BOOLEAN", "1", True),
    ("BOOLEAN", "0", False),
    ("BOOLEAN", True, True),
    ("BOOL", "true", True),
    ("DATE", "2042-07-01", "2042-07-01"),
    ("DATE", dt.date(2042, 7, 1), "2042-07-01"),
    ("DATETIME", "2042-07-01T09:30:00Z", "2042-07-01T09:30:00Z"),
    ("DATETIME", "2042-07-01T09:30:00+02:00", "2042-07-01T09:30:00+02:00"),
    ("DATETIME", "2042-07-01T09:30:00", "2042-07-01T09:30:00Z"),
    ("DATETIME", dt.datetime(2042, 7, 1, 9, 30, tzinfo=dt.UTC), "2042-07-01T09:30:00Z"),
    ("TIME", "09:30", "09:30:00"),
    ("TIME", dt.time(9, 30, 15), "09:30:15"),
    ("DURATION", "PT1S", "PT1S"),
    ("DURATION", "pt90s", "PT1M30S"),
    ("DURATION", "P1D", "P1D"),
    ("DURATION", dt.timedelta(minutes=5), "PT5M"),
    ("JSON", '{"a": [1, 2]}', {"a": [1, 2]}),
    ("JSON", {"a": [1, 2]}, {"a": [1, 2]}),
    ("JSON", "3", 3),
    ("YAML", "a: 1\nb: [x, y]\n", {"a": 1, "b": ["x", "y"]}),
    ("URI", "https://example.com/a?b=c", "https://example.com/a?b=c"),
    ("URI", "s3://bucket/key", "s3://bucket/key"),
    ("EMAIL", "ada@example.com", "ada@example.com"),
    ("FILE", "kestra:///flows/data.csv", "kestra:///flows/data.csv"),
    ("FILE", "/tmp/data.csv", "/tmp/data.csv"),
]


@pytest.mark.parametrize(("type_", "raw", "expected"), VALID)
def test_valid_values_coerce_to_json_values(type_: str, raw: Any, expected: Any) -> None:
    value = one(type_, raw)
    assert value == expected
    assert type(value) is type(expected)
    json.dumps(value)


INVALID = [
    ("INT", "4.5", "expected an integer, got '4.5'"),
    ("INT", "abc", "expected an integer"),
    ("INT", True, "expected an integer"),
    ("FLOAT", "nan", "expected a number"),
    ("FLOAT", "two", "expected a number"),
    ("BOOLEAN", "maybe", "expected a boolean (true or false), got 'maybe'"),
    ("BOOLEAN", 2, "expected a boolean"),
    ("DATE", "2042-13-01", "expected a date (YYYY-MM-DD)"),
    ("DATE", "tomorrow", "expected a date"),
    ("DATETIME", "2042-07-01Tnoon", "expected a date-time"),
    ("TIME", "25:00", "expected a time"),
    ("DURATION", "P5X", "expected an ISO-8601 duration (e.g. PT30S, PT5M, P1D), got 'P5X'"),
    ("DURATION", 5, "expected an ISO-8601 duration"),
    ("JSON", "{not json", "expected JSON text"),
    ("YAML", "a: [1", "expected YAML text"),
    ("URI", "not a uri", "expected a URI"),
    ("URI", "https://exa mple.com", "expected a URI"),
    ("EMAIL", "ada.example.com", "expected an email address"),
    ("STRING", {"a": 1}, "expected a string"),
    ("FILE", "", "expected a file path or URI"),
]


@pytest.mark.parametrize(("type_", "raw", "expected"), INVALID)
def test_invalid_values_say_what_was_expected(type_: str, raw: Any, expected: str) -> None:
    assert expected in problem(type_, raw)


def test_error_message_names_the_input_and_the_expectation() -> None:
    with pytest.raises(InputValidationError) as caught:
        coerce_inputs([spec("approved", "BOOLEAN")], {"approved": "maybe"})
    assert "inputs.approved: expected a boolean (true or false), got 'maybe'" in str(caught.value)
    assert caught.value.errors[0].as_dict()["loc"] == ["inputs", "approved"]


def test_all_field_errors_are_collected_with_the_loc_prefix() -> None:
    specs = [spec("a", "INT"), spec("b", "BOOLEAN"), spec("c", "STRING")]
    with pytest.raises(InputValidationError) as caught:
        coerce_inputs(specs, {"a": "x", "b": "maybe", "zzz": 1}, loc_prefix=("body", "inputs"))
    errors = {error.loc: error for error in caught.value.errors}
    assert set(errors) == {
        ("body", "inputs", "a"),
        ("body", "inputs", "b"),
        ("body", "inputs", "c"),
        ("body", "inputs", "zzz"),
    }
    assert errors[("body", "inputs", "c")].type == "missing"
    assert errors[("body", "inputs", "zzz")].type == "extra_forbidden"
    assert "unknown input 'zzz'" in errors[("body", "inputs", "zzz")].msg
    assert "\n" not in str(caught.value)


# --- choices and lists ----------------------------------------------------------------


def test_select_accepts_only_its_values() -> None:
    assert one("SELECT", "b", values=["a", "b"]) == "b"
    assert one("ENUM", "2", values=[1, 2]) == 2
    assert "expected one of 'a', 'b', got 'c'" in problem("SELECT", "c", values=["a", "b"])
    assert one("SELECT", "c", values=["a", "b"], allowCustomValue=True) == "c"


@pytest.mark.parametrize("raw", [["a", "c"], '["a", "c"]', "a, c", "a,c,a"])
def test_multiselect_accepts_lists_json_and_comma_separated(raw: Any) -> None:
    assert one("MULTISELECT", raw, values=["a", "b", "c"]) == ["a", "c"]


def test_multiselect_rejects_values_outside_the_list() -> None:
    assert "expected one of" in problem("MULTISELECT", "a,z", values=["a", "b"])


def test_array_coerces_each_item_to_its_item_type() -> None:
    assert one("ARRAY", "1, 2, 3", itemType="INT") == [1, 2, 3]
    assert one("ARRAY", [1, "2"], itemType="INT") == [1, 2]
    assert one("ARRAY", '["x", "y"]') == ["x", "y"]
    assert "item 1: expected an integer" in problem("ARRAY", "1,x", itemType="INT")


# --- defaults, required, bounds -------------------------------------------------------


def test_defaults_fill_missing_values_and_are_coerced() -> None:
    specs = [
        spec("delay", "DURATION", defaults="PT1S"),
        spec("start", "DATE", defaults=dt.date(2042, 7, 1)),
        spec("n", "INT", defaults="3"),
    ]
    assert coerce_inputs(specs, {}) == {"delay": "PT1S", "start": "2042-07-01", "n": 3}
    assert coerce_inputs(specs, {"n": "4"})["n"] == 4


def test_none_counts_as_not_given() -> None:
    assert coerce_inputs([spec("n", "INT", defaults=1)], {"n": None}) == {"n": 1}


def test_required_input_without_value_or_default_is_an_error() -> None:
    with pytest.raises(InputValidationError) as caught:
        coerce_inputs([spec("asked", "STRING")], {})
    assert caught.value.errors[0].type == "missing"
    assert "required input 'asked' is missing" in str(caught.value)


def test_optional_input_without_value_is_null_as_in_kestra() -> None:
    specs = [spec("asked", "STRING", required=False), spec("data", "FILE", required=False)]
    assert coerce_inputs(specs, {}) == {"asked": None, "data": None}


def test_int_and_duration_bounds() -> None:
    assert one("INT", "5", min=1, max=10) == 5
    assert "expected at most 10" in problem("INT", "11", min=1, max=10)
    assert "expected at least PT1M" in problem("DURATION", "PT30S", min="PT1M")
    assert "expected a value after 2042-01-01" in problem("DATE", "2041-12-31", after="2042-01-01")


def test_secret_values_are_not_echoed_in_errors() -> None:
    assert "hunter2" not in problem("SECRET", "hunter2", validator=r"\d+")


def test_string_validator_is_a_full_match() -> None:
    assert one("STRING", "AB-12", validator=r"[A-Z]+-\d+") == "AB-12"
    assert "does not match the pattern" in problem("STRING", "xAB-12", validator=r"[A-Z]+-\d+")


# --- spec validation ------------------------------------------------------------------


def test_unknown_type_lists_the_allowed_types() -> None:
    with pytest.raises(ValidationError) as caught:
        spec("x", "STRONG")
    message = str(caught.value)
    assert "unknown input type 'STRONG'" in message
    assert "BOOLEAN" in message and "MULTISELECT" in message


@pytest.mark.parametrize(
    "extra",
    [
        {"type": "SELECT"},
        {"type": "INT", "itemType": "INT"},
        {"type": "INT", "validator": "x"},
        {"type": "STRING", "min": 1},
        {"type": "INT", "defaults": "many"},
        {"type": "STRING", "validator": "("},
        {"type": "STRING", "surprise": True},
    ],
)
def test_inconsistent_specs_are_refused(extra: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        InputSpec.model_validate({"id": "x", **extra})


def test_types_are_case_insensitive_and_keep_their_spelling() -> None:
    bool_spec = spec("x", "bool")
    assert (bool_spec.type, bool_spec.kind) == ("BOOL", "BOOLEAN")
    assert spec("x", "enum", values=["a"]).kind == "SELECT"


def test_template_defaults_are_not_checked_at_declaration() -> None:
    assert spec("x", "INT", defaults="{{ vars.n }}").defaults == "{{ vars.n }}"


# --- dotted ids -----------------------------------------------------------------------


def test_dotted_ids_nest_and_accept_nested_or_flat_raw_values() -> None:
    specs = [spec("request.name", "STRING"), spec("request.days", "INT"), spec("ok", "BOOLEAN")]
    expected = {"request": {"name": "Rick", "days": 3}, "ok": True}
    nested = {"request": {"name": "Rick", "days": "3"}, "ok": "true"}
    flat = {"request.name": "Rick", "request.days": "3", "ok": "true"}
    assert coerce_inputs(specs, nested) == expected
    assert coerce_inputs(specs, flat) == expected
    assert (
        coerce_inputs(specs, {"request": {"name": "Rick"}, "request.days": 3, "ok": 1}) == expected
    )


def test_dotted_id_errors_use_the_dotted_id() -> None:
    with pytest.raises(InputValidationError) as caught:
        coerce_inputs([spec("request.days", "INT")], {"request": {"days": "x", "other": 1}})
    locs = {error.loc for error in caught.value.errors}
    assert locs == {("inputs", "request.days"), ("inputs", "request.other")}


def test_the_same_value_given_nested_and_flat_is_an_error() -> None:
    with pytest.raises(InputValidationError, match="given twice"):
        coerce_inputs([spec("a.b")], {"a": {"b": "1"}, "a.b": "2"})


def test_an_id_cannot_be_a_value_and_a_group() -> None:
    with pytest.raises(InputValidationError, match="cannot hold a value and also group"):
        coerce_inputs([spec("a"), spec("a.b")], {})


# --- JSON Schema ----------------------------------------------------------------------


def test_json_schema_shape() -> None:
    specs = [
        spec("request.name", "STRING", defaults="Rick", displayName="Name"),
        spec("request.start", "DATE", description="First day"),
        spec("approved", "BOOLEAN", defaults=True),
        spec("when", "DATETIME", required=False),
        spec("level", "SELECT", values=["low", "high"]),
        spec("tags", "MULTISELECT", values=["a", "b"], required=False),
        spec("token", "SECRET", defaults="hunter2"),
        spec("numbers", "ARRAY", itemType="INT", required=False),
        spec("wait", "DURATION", defaults="pt60s"),
        spec("count", "INT", min="1", max=9, required=False),
    ]
    schema = inputs_json_schema(specs, title="Approve")
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object" and schema["title"] == "Approve"
    assert schema["required"] == ["request", "level"]
    request = schema["properties"]["request"]
    assert request["type"] == "object"
    assert request["required"] == ["start"]
    assert request["properties"]["name"] == {
        "title": "Name",
        "type": "string",
        "default": "Rick",
        "x-pausepoint-type": "STRING",
    }
    assert request["properties"]["start"]["format"] == "date"
    assert request["properties"]["start"]["description"] == "First day"
    props = schema["properties"]
    assert props["approved"]["type"] == "boolean" and props["approved"]["default"] is True
    assert props["when"]["format"] == "date-time"
    assert props["level"]["enum"] == ["low", "high"]
    assert props["tags"]["type"] == "array"
    assert props["tags"]["items"] == {"enum": ["a", "b"]} and props["tags"]["uniqueItems"] is True
    assert props["token"]["writeOnly"] is True and props["token"]["format"] == "password"
    assert "default" not in props["token"]
    assert props["numbers"]["items"]["type"] == "integer"
    assert props["wait"] == {
        "title": "wait",
        "type": "string",
        "format": "duration",
        "default": "PT1M",
        "x-pausepoint-type": "DURATION",
    }
    assert (props["count"]["minimum"], props["count"]["maximum"]) == (1, 9)
    assert all("x-pausepoint-type" in prop for name, prop in props.items() if name != "request")
    json.dumps(schema)


# --- properties -----------------------------------------------------------------------


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_int_round_trips_through_its_string_form(number: int) -> None:
    assert one("INT", str(number)) == number


@given(st.text(max_size=30))
def test_boolean_coercion_never_raises_anything_but_input_errors(text: str) -> None:
    with contextlib.suppress(InputValidationError):
        assert isinstance(one("BOOLEAN", text), bool)


@given(
    st.sampled_from(
        sorted(
            {"STRING", "INT", "FLOAT", "BOOLEAN", "DATE", "DATETIME", "TIME"}
            | {"DURATION", "JSON", "URI", "EMAIL", "SECRET", "ARRAY", "FILE"}
        )
    ),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
        max_leaves=8,
    ),
)
def test_any_raw_value_either_coerces_to_json_or_is_an_input_error(type_: str, raw: Any) -> None:
    try:
        value = coerce_inputs([spec("x", type_, required=False)], {"x": raw})
    except InputValidationError:
        return
    json.dumps(value, allow_nan=False)


# --- OBJECT, TABLE and JSON with a jsonSchema (Kestra's inputs.yaml and
# json-input-schema-validation.yaml) --------------------------------------------------

DISK = [
    {"id": "size_gb", "type": "INT", "min": 10},
    {"id": "mountpoint", "type": "STRING", "validator": "^/.*", "required": False},
]


def test_an_object_input_checks_each_of_its_fields() -> None:
    assert one("OBJECT", '{"size_gb": "20"}', properties=DISK) == {
        "size_gb": 20,
        "mountpoint": None,
    }
    assert "size_gb: expected at least 10" in problem("OBJECT", {"size_gb": 5}, properties=DISK)
    assert "unknown input 'colour'" in problem(
        "OBJECT", {"size_gb": 11, "colour": "red"}, properties=DISK
    )
    assert "expected an object" in problem("OBJECT", "[1]", properties=DISK)


def test_a_table_input_checks_its_rows_and_their_cells() -> None:
    rows = [{"size_gb": 11, "mountpoint": "/a"}, {"size_gb": "12"}]
    assert one("TABLE", rows, columns=DISK, rows={"max": 2}) == [
        {"size_gb": 11, "mountpoint": "/a"},
        {"size_gb": 12, "mountpoint": None},
    ]
    assert "at most 2 rows" in problem("TABLE", rows * 2, columns=DISK, rows={"max": 2})
    assert "row 1: mountpoint" in problem(
        "TABLE", [{"size_gb": 11}, {"size_gb": 11, "mountpoint": "rel"}], columns=DISK
    )


def test_object_and_table_specs_are_checked_where_they_are_written() -> None:
    with pytest.raises(ValidationError, match="needs 'properties'"):
        spec("x", "OBJECT")
    with pytest.raises(ValidationError, match="only TABLE inputs"):
        spec("x", "STRING", columns=DISK)
    with pytest.raises(ValidationError, match="declared twice"):
        spec("x", "OBJECT", properties=[DISK[0], DISK[0]])


NAMED = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string"}},
    "additionalProperties": False,
}


def test_a_json_input_meets_its_json_schema() -> None:
    assert one("JSON", '{"name": "x"}', jsonSchema=json.dumps(NAMED)) == {"name": "x"}
    assert "'name' is a required property" in problem("JSON", {}, jsonSchema=NAMED)
    assert "at name: 1 is not of type 'string'" in problem("JSON", {"name": 1}, jsonSchema=NAMED)
    with pytest.raises(ValidationError, match="not a valid JSON Schema"):
        spec("x", "JSON", jsonSchema={"type": "no-such-type"})
    with pytest.raises(ValidationError, match="only to JSON inputs"):
        spec("x", "STRING", jsonSchema=NAMED)


def test_object_table_and_json_schema_reach_the_forms_json_schema() -> None:
    schema = inputs_json_schema(
        [
            spec("disk", "OBJECT", properties=DISK),
            spec("disks", "TABLE", columns=DISK, rows={"min": 1, "max": 2}),
            spec("doc", "JSON", jsonSchema=NAMED),
        ]
    )["properties"]
    assert schema["disk"]["properties"]["size_gb"]["minimum"] == 10
    assert schema["disk"]["required"] == ["size_gb"]
    assert schema["disks"]["type"] == "array" and schema["disks"]["maxItems"] == 2
    assert schema["disks"]["items"]["properties"]["mountpoint"]["pattern"] == "^(?:^/.*)$"
    assert schema["doc"]["required"] == ["name"]
