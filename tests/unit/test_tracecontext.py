"""The W3C Trace Context parser: what is a trace context, and what is ignored."""

from __future__ import annotations

import pytest

from pausepoint.tracecontext import MAX_TRACESTATE_LENGTH, parse_trace_context, parse_traceparent

# The example of the W3C Trace Context recommendation, section 3.2.
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
VALID = f"00-{TRACE_ID}-{PARENT_ID}-01"


def test_a_version_00_header_parses_into_its_fields() -> None:
    context = parse_traceparent(VALID)
    assert context is not None
    assert (context.trace_id, context.parent_id, context.flags) == (TRACE_ID, PARENT_ID, 1)
    assert context.sampled
    assert context.traceparent == VALID


def test_flags_keep_every_bit_and_are_written_back_as_two_hex_digits() -> None:
    context = parse_traceparent(f"00-{TRACE_ID}-{PARENT_ID}-00")
    assert context is not None and not context.sampled
    assert context.traceparent.endswith("-00")
    context = parse_traceparent(f"00-{TRACE_ID}-{PARENT_ID}-03")
    assert context is not None and context.flags == 3 and context.sampled


def test_surrounding_blanks_are_optional_whitespace() -> None:
    assert parse_traceparent(f" \t{VALID} ") is not None


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        VALID.upper(),  # hex is lowercase
        f"00-{'0' * 32}-{PARENT_ID}-01",  # all-zero trace id
        f"00-{TRACE_ID}-{'0' * 16}-01",  # all-zero parent id
        f"ff-{TRACE_ID}-{PARENT_ID}-01",  # version ff is forbidden
        f"00-{TRACE_ID[:-1]}-{PARENT_ID}-01",  # short trace id
        f"00-{TRACE_ID}-{PARENT_ID}0-01",  # long parent id
        f"00-{TRACE_ID}-{PARENT_ID}-1",  # one flag digit
        f"00-{TRACE_ID}-{PARENT_ID}-0g",  # not hex
        f"00_{TRACE_ID}_{PARENT_ID}_01",  # wrong separator
        f"{VALID}-extra",  # version 00 has exactly four fields
        f"{VALID}0",
        f"0-{TRACE_ID}-{PARENT_ID}-01",
    ],
)
def test_a_malformed_header_is_no_trace_context(value: str) -> None:
    assert parse_traceparent(value) is None


def test_a_later_version_is_read_in_version_00s_layout_and_may_add_fields() -> None:
    for value in (f"01-{TRACE_ID}-{PARENT_ID}-01", f"cc-{TRACE_ID}-{PARENT_ID}-01-whatever-next"):
        context = parse_traceparent(value)
        assert context is not None, value
        assert (context.trace_id, context.parent_id) == (TRACE_ID, PARENT_ID)
        assert context.traceparent == VALID  # passed on in the version this code knows


def test_a_later_version_must_separate_what_it_adds_with_a_dash() -> None:
    assert parse_traceparent(f"01-{TRACE_ID}-{PARENT_ID}-01x") is None


def test_tracestate_is_kept_with_a_valid_traceparent_and_joined_across_headers() -> None:
    context = parse_trace_context([VALID], ["rojo=00f067aa0ba902b7", " congo=t61rcWkgMzE"])
    assert context is not None
    assert context.tracestate == "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"


def test_tracestate_without_a_valid_traceparent_means_nothing() -> None:
    assert parse_trace_context([], ["rojo=1"]) is None
    assert parse_trace_context(["nonsense"], ["rojo=1"]) is None


def test_two_traceparent_headers_are_no_trace_context() -> None:
    assert parse_trace_context([VALID, VALID]) is None


def test_a_tracestate_too_long_to_pass_on_whole_is_dropped_not_cut() -> None:
    context = parse_trace_context([VALID], ["k=" + "v" * MAX_TRACESTATE_LENGTH])
    assert context is not None and context.tracestate is None
    assert context.trace_id == TRACE_ID
