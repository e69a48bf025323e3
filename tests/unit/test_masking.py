"""Masking secret values: the written forms, one pass longest first, and where the engine masks.

The first half tests the masker of ``engine/state.py`` on its own; the second
drives the pure engine (tests/unit/engine_driver.py) to check that secrets and
the values of SECRET-typed inputs are masked in everything a task run records
and every event, while the tasks themselves still receive the real values.
"""

from __future__ import annotations

import base64
import enum
import html
import json
import urllib.parse
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pausepoint.engine.state import (
    MASK,
    SCRUB_MIN_LENGTH,
    Masker,
    masker,
    redact_secret_inputs,
    scrub,
    secret_input_values,
    written_forms,
)
from pausepoint.flow.inputs import InputSpec
from tests.unit.engine_driver import Driver

SECRET = 'Sekr3t/Tok+en=="Q\\x'  # every form of it differs from the plain value

FORMS = {
    "url-encoded (path)": urllib.parse.quote(SECRET),
    "url-encoded": urllib.parse.quote(SECRET, safe=""),
    "form-encoded": urllib.parse.quote_plus(SECRET),
    "json-escaped": json.dumps(SECRET)[1:-1],
    "json-escaped twice": json.dumps(json.dumps(SECRET)[1:-1])[1:-1],
    "html-escaped": html.escape(SECRET),
    "repr": repr(SECRET)[1:-1],
    "base64": base64.b64encode(SECRET.encode()).decode().rstrip("="),
    "base64url": base64.urlsafe_b64encode(SECRET.encode()).decode().rstrip("="),
}


# -- the masker --------------------------------------------------------------------------


@pytest.mark.parametrize("form", sorted(FORMS))
def test_each_written_form_of_a_secret_is_masked(form: str) -> None:
    written = FORMS[form]
    assert written != SECRET  # otherwise this case would test the plain value again
    text = f"GET /hook?x={written}&y=1"
    assert scrub(text, {"TOKEN": SECRET}) == f"GET /hook?x={MASK}&y=1"
    assert scrub({"body": [text]}, {"TOKEN": SECRET}) == {"body": [f"GET /hook?x={MASK}&y=1"]}


def test_written_forms_are_distinct_and_include_the_plain_value() -> None:
    forms = written_forms(SECRET)
    assert SECRET in forms
    assert set(FORMS.values()) <= forms
    # A value with nothing to escape has only its plain and base64 forms.
    assert written_forms("abcdefgh") == {
        "abcdefgh",
        base64.b64encode(b"abcdefgh").decode().rstrip("="),
    }


def test_a_secret_that_contains_another_is_masked_whole() -> None:
    mask = masker(["abcd", "abcdefgh"])
    assert mask("xxabcdefghyy and abcdzz") == f"xx{MASK}yy and {MASK}zz"
    # Longest first whichever order the secrets come in.
    assert masker(["abcdefgh", "abcd"])("abcdefgh") == MASK


def test_overlapping_secrets_leave_no_whole_value_behind() -> None:
    mask = masker(["xabc", "abcdef"])
    masked = mask("xabcdef")
    assert "xabc" not in masked and "abcdef" not in masked, masked


@pytest.mark.parametrize("short", ["", "a", "abc"])
def test_values_shorter_than_the_minimum_are_not_masked(short: str) -> None:
    assert len(short) < SCRUB_MIN_LENGTH
    text = "a cab, abc and abcd"
    assert not masker([short])
    assert masker([short])(text) == text
    assert Masker([short])(text) == text
    assert scrub(text, {"SHORT": short}) == text
    assert masker([short, "abcd"])(text) == f"a cab, abc and {MASK}"


def test_values_that_are_not_strings_are_ignored() -> None:
    assert not masker([None, 12345678, b"bytes-value"])


def test_keys_nested_values_and_numbers_are_masked() -> None:
    value = {
        "Sekr3tKey": {"list": ["a Sekr3tKey b", ("Sekr3tKey",)], "n": 1},
        "pin": 99123456,
        "flag": True,
        "nothing": None,
    }
    masked = masker(["Sekr3tKey", "123456"])(value)
    assert masked == {
        MASK: {"list": [f"a {MASK} b", [MASK]], "n": 1},
        "pin": f"99{MASK}",
        "flag": True,
        "nothing": None,
    }


def test_a_value_with_nothing_to_mask_is_returned_as_it_is() -> None:
    value = {"a": ["plain", {"b": "text"}], "n": 3}
    before = json.dumps(value)
    assert masker(["Sekr3tKey"])(value) is value
    assert masker([])(value) is value
    masked = masker(["plain"])(value)
    assert masked == {"a": [MASK, {"b": "text"}], "n": 3}
    assert json.dumps(value) == before  # the original is never changed


def test_values_that_are_not_json_are_still_masked() -> None:
    class Opaque:
        pass

    class Kind(enum.StrEnum):
        TOKEN = "the Sekr3tKey"

    thing = Opaque()
    value = {"when": thing, "note": "token Sekr3tKey", "kind": Kind.TOKEN}
    masked = masker(["Sekr3tKey"])(value)
    assert masked == {"when": thing, "note": f"token {MASK}", "kind": f"the {MASK}"}
    assert type(masked["kind"]) is str


def test_maskers_are_built_once_per_set_of_values() -> None:
    first = masker(["Sekr3tKey", "0ther-Value"])
    assert masker(("0ther-Value",), {"Sekr3tKey": 1}) is first  # order and source do not matter
    assert masker(["Sekr3tKey"]) is not first
    assert isinstance(first, Masker)


@given(
    secret=st.text(st.characters(exclude_categories=["Cs"], exclude_characters="*"), min_size=4),
    before=st.text(max_size=20),
    after=st.text(max_size=20),
    data=st.data(),
)
def test_no_written_form_survives_masking(
    secret: str, before: str, after: str, data: st.DataObject
) -> None:
    form = data.draw(st.sampled_from(sorted(written_forms(secret))))
    mask = masker([secret])
    masked = mask(before + form + after)
    for written in written_forms(secret):
        assert written not in masked
    # Inside a container (found through its JSON text first), the same masking.
    assert mask({before: [before + form + after]}) == {mask(before): [masked]}


# -- SECRET-typed inputs ---------------------------------------------------------------


SPECS = [
    InputSpec(id="user", type="STRING"),
    InputSpec(id="creds.password", type="SECRET"),
    InputSpec(id="pin", type="SECRET", required=False),
    InputSpec(id="keys", type="ARRAY", item_type="SECRET", required=False),
    InputSpec(id="absent", type="SECRET", required=False),
]
VALUES: dict[str, Any] = {
    "user": "rick",
    "creds": {"password": "hunter22"},
    "pin": "42",
    "keys": ["key-one", "key-two"],
    "absent": None,
}


def test_redacting_shows_every_secret_typed_value_masked_however_short() -> None:
    before = json.dumps(VALUES)
    assert redact_secret_inputs(SPECS, VALUES) == {
        "user": "rick",
        "creds": {"password": MASK},
        "pin": MASK,
        "keys": [MASK, MASK],
        "absent": None,
    }
    assert json.dumps(VALUES) == before
    assert redact_secret_inputs(SPECS[:1], VALUES) is VALUES  # nothing secret: no copy


def test_secret_input_values_lists_what_the_masker_must_mask() -> None:
    assert secret_input_values(SPECS, VALUES) == ["hunter22", "42", "key-one", "key-two"]
    # An approval's own inputs are plain dicts, never SECRET.
    assert secret_input_values([{"id": "reason", "type": "SECRET"}], {"reason": "x"}) == []


# -- where the engine masks ---------------------------------------------------------------

TOKEN = "Tok3n/Value+1=="


def echo(driver: Driver, task_id: str) -> dict[str, Any]:
    """Complete ``task_id`` with outputs echoing what it was asked to do (as APIs do)."""
    action = driver.resolve(task_id)
    spec = json.dumps(action.spec)
    driver.complete(task_id, {"you_sent": spec, "uri": urllib.parse.quote(spec, safe="")})
    return dict(action.spec)


def all_events(driver: Driver) -> str:
    return json.dumps([[e.type, e.data] for e in driver.events])


def assert_nowhere(driver: Driver, value: str, *, except_runs: tuple[str, ...] = ()) -> None:
    """No written form of ``value`` in any event, nor in any task run not excepted."""
    shown = {"events": all_events(driver)}
    for run in driver.state["task_runs"].values():
        if run["task_id"] not in except_runs:
            shown[f"run {run['task_id']}"] = json.dumps(run)
    shown["flow outputs"] = json.dumps(driver.state["result"])
    shown["error"] = json.dumps(driver.state["error"])
    for where, text in shown.items():
        for form in written_forms(value):
            assert form not in text, f"{form!r} in {where}: {text}"


def test_task_outputs_logs_errors_and_flow_outputs_mask_secrets() -> None:
    driver = Driver.of(
        """
id: masked
namespace: t
tasks:
  - id: call
    type: log
    message: "token {{ secrets.TOKEN }}"
  - id: flaky
    type: log
    message: "again {{ secrets.TOKEN }}"
    retry: {type: constant, interval: PT1S, maxAttempts: 2}
outputs:
  summary: "used {{ secrets.TOKEN }}"
""",
        secrets={"TOKEN": TOKEN},
    )
    driver.start()
    sent = echo(driver, "call")
    assert sent["message"] == f"token {TOKEN}"  # the task itself gets the real value
    assert f'"token {MASK}"' in driver.run_of("call")["outputs"]["you_sent"]
    driver.fail("flaky", f"rejected {urllib.parse.quote_plus(TOKEN)}")
    (retrying,) = driver.events_of("task.retrying")
    assert retrying.data["error"] == f"rejected {MASK}"
    driver.fire_due_timers(advance_clock_to=driver.now + 2)
    driver.complete("flaky", {"logs": [f"saw {TOKEN}"]})
    assert driver.status().value == "COMPLETED"
    assert driver.state["result"] == {"summary": f"used {MASK}"}
    assert driver.events_of("workflow.completed")[0].data["outputs"] == {"summary": f"used {MASK}"}
    assert driver.run_of("flaky")["outputs"] == {"logs": [f"saw {MASK}"]}
    assert_nowhere(driver, TOKEN)


def test_template_errors_naming_a_secret_are_masked() -> None:
    driver = Driver.of(
        """
id: failing
namespace: t
tasks:
  - id: lookup
    type: return
    format: "{{ outputs[secrets.TOKEN] }}"
""",
        secrets={"TOKEN": TOKEN},
    )
    driver.start()
    assert driver.status().value == "FAILED"
    assert MASK in driver.run_of("lookup")["error"]
    assert_nowhere(driver, TOKEN)


def test_a_failing_flow_output_template_is_masked_in_the_execution_error() -> None:
    driver = Driver.of(
        """
id: failing_outputs
namespace: t
tasks:
  - id: only
    type: return
    format: done
outputs:
  value: "{{ outputs[secrets.TOKEN] }}"
""",
        secrets={"TOKEN": TOKEN},
    )
    driver.start()
    driver.run_until_quiet()
    assert driver.status().value == "FAILED"
    assert MASK in driver.state["error"]["message"]
    assert_nowhere(driver, TOKEN)


def test_a_secret_typed_flow_input_reaches_tasks_and_is_masked_everywhere_else() -> None:
    password = "Start/Passw0rd+"
    driver = Driver.of(
        """
id: with_secret_input
namespace: t
inputs:
  - id: password
    type: SECRET
tasks:
  - id: use
    type: log
    message: "{{ inputs.password }}"
""",
        inputs={"password": password},
    )
    driver.start()
    assert driver.events_of("workflow.started")[0].data["inputs"] == {"password": MASK}
    assert echo(driver, "use")["message"] == password
    assert driver.status().value == "COMPLETED"
    assert driver.state["inputs"] == {"password": password}  # kept: tasks read it
    assert_nowhere(driver, password)


def test_a_secret_typed_resume_value_is_kept_for_later_tasks_and_masked_everywhere_else() -> None:
    password = "Appr0ver/Passw0rd+"
    driver = Driver.of(
        """
id: with_secret_resume
namespace: t
tasks:
  - id: approve
    type: pause
    onResume:
      - id: password
        type: SECRET
      - id: note
        type: STRING
    tasks:
      - id: inside
        type: log
        message: "{{ outputs.approve.onResume.password }}"
  - id: after
    type: log
    message: "{{ outputs.approve.onResume.password }}"
"""
    )
    driver.start()
    assert driver.resume(password=password, note="fine").applied
    (resumed,) = driver.events_of("workflow.resumed")
    assert resumed.data["inputs"] == {"password": MASK, "note": "fine"}
    assert echo(driver, "inside")["message"] == password
    # A crash reloads the state from what was stored (JSON): the value is still masked.
    driver.state = json.loads(json.dumps(driver.state))
    driver.recover()
    assert echo(driver, "after")["message"] == password
    assert driver.status().value == "COMPLETED"
    approve = driver.run_of("approve")
    assert approve["outputs"]["onResume"] == {"password": password, "note": "fine"}
    (completed,) = [e for e in driver.events_of("task.completed") if e.data["task_id"] == "approve"]
    assert completed.data["outputs"]["onResume"] == {"password": MASK, "note": "fine"}
    assert_nowhere(driver, password, except_runs=("approve",))
