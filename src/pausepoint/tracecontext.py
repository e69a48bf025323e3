"""W3C Trace Context: the ``traceparent`` and ``tracestate`` request headers, parsed.

A caller's tracing system names the trace a request belongs to; pausepoint
carries that name into the audit record and the events the request causes,
and parents its own spans on it when OpenTelemetry is switched on. The spec
(https://www.w3.org/TR/trace-context/) says a header that does not parse is
ignored, never refused: :func:`parse_trace_context` answers ``None`` for it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# version "-" trace-id "-" parent-id "-" trace-flags, all lowercase hex.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_VERSION_00_LENGTH = 55
# The spec asks that at least 512 characters of tracestate be passed on; a longer one
# may be dropped whole, and is (cutting list members apart would corrupt them).
MAX_TRACESTATE_LENGTH = 512
_TRACESTATE = re.compile(r"[\x20-\x7e]*")


@dataclass(frozen=True)
class TraceContext:
    """The trace a request belongs to and the caller's span in it (its parent)."""

    trace_id: str  # 32 lowercase hex digits, not all zero
    parent_id: str  # 16 lowercase hex digits, not all zero
    flags: int
    tracestate: str | None = None

    @property
    def traceparent(self) -> str:
        """The header in version 00, the one version this code writes."""
        return f"00-{self.trace_id}-{self.parent_id}-{self.flags:02x}"

    @property
    def sampled(self) -> bool:
        return bool(self.flags & 0x01)


def parse_traceparent(value: str) -> TraceContext | None:
    """The trace context in a ``traceparent`` value; ``None`` when it is not valid.

    A version above 00 is read the way the spec asks of a version this code does
    not know: its first 55 characters in version 00's layout, followed by nothing
    or by ``-`` and whatever that version adds. Version ``ff`` is never valid.
    """
    value = value.strip(" \t")
    match = _TRACEPARENT.match(value)
    if match is None:
        return None
    version, trace_id, parent_id, flags = match.groups()
    if version == "ff" or trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    if version == "00":
        if len(value) != _VERSION_00_LENGTH:
            return None
    elif len(value) > _VERSION_00_LENGTH and value[_VERSION_00_LENGTH] != "-":
        return None
    return TraceContext(trace_id, parent_id, int(flags, 16))


def parse_trace_context(
    traceparents: Sequence[str], tracestates: Sequence[str] = ()
) -> TraceContext | None:
    """The trace context of a request, from every value of its two headers.

    Two ``traceparent`` headers make the trace unknowable, so neither counts;
    several ``tracestate`` headers are one list joined by commas. Without a valid
    ``traceparent`` the ``tracestate`` means nothing and is dropped with it.
    """
    if len(traceparents) != 1:
        return None
    context = parse_traceparent(traceparents[0])
    if context is None:
        return None
    state = ",".join(part.strip(" \t") for part in tracestates if part.strip(" \t"))
    if state and len(state) <= MAX_TRACESTATE_LENGTH and _TRACESTATE.fullmatch(state):
        return TraceContext(context.trace_id, context.parent_id, context.flags, state)
    return context
