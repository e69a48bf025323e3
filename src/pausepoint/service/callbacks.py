"""Callback tokens: a machine completes a Pause task's wait with one call.

The pattern of Trigger.dev's waitpoint tokens and Step Functions' task tokens:
a token names one Pause task of one execution (signed with a key derived from
the server's secrets key, expiring); ``POST /api/v1/callbacks/{token}`` with a
JSON object completes the wait with those ``onResume`` inputs, typed and
validated. A completion that arrives before the execution reaches the task is
kept (durably, in the execution's state) and applied when the task waits; one
that arrives after the wait ended (resumed by someone, expired, cancelled) is
refused. A second completion returns the first one's result. A heartbeat
(``…/heartbeat``) starts the task's ``heartbeatTimeout`` again.

A flow's tasks reach the tokens' URLs as ``{{ callbacks.<pause task id> }}``
(the engine renders a placeholder; the task's runner signs it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pausepoint.errors import PausepointError
from pausepoint.service.links import LinkExpired, LinkRefused, sign_claims, verify_claims

CALLBACK_PATH = "/api/v1/callbacks/"


@dataclass(frozen=True)
class CallbackToken:
    org_id: str
    execution_id: str
    task_id: str
    expires_at: int


def sign_callback(token: CallbackToken, key: bytes) -> str:
    claims = {
        "k": "callback",
        "o": token.org_id,
        "e": token.execution_id,
        "t": token.task_id,
        "x": token.expires_at,
    }
    return sign_claims(claims, key)


def verify_callback(text: str, key: bytes, now: float) -> CallbackToken:
    altered = LinkRefused("this callback token is not valid: altered, cut short, or not ours")
    claims = verify_claims(text, key, altered)
    try:
        if claims["k"] != "callback":
            raise altered
        token = CallbackToken(
            str(claims["o"]), str(claims["e"]), str(claims["t"]), int(claims["x"])
        )
    except (KeyError, TypeError, ValueError):
        raise altered from None
    if now >= token.expires_at:
        raise LinkExpired("this callback token has expired")
    return token


def callback_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}{CALLBACK_PATH}{token}"


@dataclass(frozen=True)
class MintedCallback:
    url: str
    token: str
    task_id: str
    expires_at: str


@dataclass(frozen=True)
class CallbackOutcome:
    """What a completion did: ``applied`` (the wait ended), ``kept`` (the task does not
    wait yet), and whether this is the first completion's result returned again."""

    execution_id: str
    task_id: str
    status: str
    inputs: dict[str, Any]
    completed_at: str
    replayed: bool


class CallbackRefused(PausepointError):
    code = "conflict"
    http_status = 409
