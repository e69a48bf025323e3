"""ISO-8601 durations (``PT5M``, ``P1D``, ``PT0.5S``)."""

from __future__ import annotations

import math
import re

_DURATION = re.compile(
    r"^P(?!$)(?:(?P<weeks>\d+(?:\.\d+)?)W)?(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)
_SECONDS = {"weeks": 604800.0, "days": 86400.0, "hours": 3600.0, "minutes": 60.0, "seconds": 1.0}
# Deadlines are timestamps that must still be dates (Python's end at year 9999), and
# counting seconds in floats stays exact up to here: longer durations are refused.
MAX_DURATION_DAYS = 365_000
MAX_DURATION_SECONDS = MAX_DURATION_DAYS * 86400.0


def is_template(value: str) -> bool:
    return "{{" in value or "{%" in value


def parse_duration(value: str) -> float:
    """Seconds in an ISO-8601 duration; raises ``ValueError`` naming the bad value."""
    match = _DURATION.match(value.strip().upper()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{value!r} is not an ISO-8601 duration (e.g. PT30S, PT5M, P1D)")
    seconds = sum(float(part) * _SECONDS[name] for name, part in match.groupdict().items() if part)
    if not math.isfinite(seconds) or seconds > MAX_DURATION_SECONDS:
        shown = value if len(value) <= 40 else value[:37] + "..."
        raise ValueError(f"{shown!r} is longer than the longest duration, P{MAX_DURATION_DAYS}D")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest ISO-8601 form of ``seconds`` (``PT1M30S``)."""
    whole = int(seconds)
    fraction = seconds - whole
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = "P" + (f"{days}D" if days else "")
    clock = ""
    if hours:
        clock += f"{hours}H"
    if minutes:
        clock += f"{minutes}M"
    if secs or fraction or not (days or hours or minutes):
        clock += f"{secs + fraction:g}S"
    return text + ("T" + clock if clock else "")
