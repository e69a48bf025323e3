"""Decision links: signed URLs that vote on one approval request as one approver.

A link names its organization, execution, request (``p-<task run>``), the
approver (and the groups their vote counts for), what it does (``approve``,
``deny``, or ``review``: the form with both) and when it expires; an
HMAC-SHA256 over all of it, with a key derived from the server's secrets key,
makes it unforgeable. The link is the credential: no API key is needed, and
the vote still goes through the control plane as that approver, so the
quorum, separation of duties, audit and idempotency rules all apply. It is
single-use by those rules (no one votes twice) and useless once the request is
decided or expired (the pause point is gone). Opening a link only shows a page;
a POST from that page votes (mail scanners that fetch links decide nothing).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any, Literal

from pausepoint.errors import PausepointError
from pausepoint.models import ApprovalRequestView

Action = Literal["approve", "deny", "review"]
ACTIONS: tuple[Action, ...] = ("approve", "deny", "review")
LINK_PATH = "/decide/"
MAX_TOKEN_LENGTH = 4000


class LinkRefused(PausepointError):
    """A link that cannot be used: altered, expired, or for something that is gone."""

    http_status = 403

    def __init__(self, message: str, *, http_status: int | None = None) -> None:
        super().__init__(message)
        if http_status is not None:
            self.http_status = http_status


class LinkExpired(LinkRefused):
    http_status = 410


@dataclass(frozen=True)
class DecisionLink:
    org_id: str
    execution_id: str
    pause_id: str
    approver: str
    action: Action
    expires_at: int  # epoch seconds
    groups: tuple[str, ...] = ()
    nonce: str = ""

    def claims(self) -> dict[str, Any]:
        return {
            "o": self.org_id,
            "e": self.execution_id,
            "p": self.pause_id,
            "u": self.approver,
            "a": self.action,
            "x": self.expires_at,
            "g": list(self.groups),
            "n": self.nonce,
        }


@dataclass(frozen=True)
class MintedLink:
    url: str
    token: str
    approver: str
    action: str
    expires_at: str


@dataclass(frozen=True)
class LinkPage:
    """What a link's page shows: the request it votes on, and as whom."""

    link: DecisionLink
    namespace: str
    flow_id: str
    execution_id: str
    task_id: str
    request: ApprovalRequestView
    may_approve: bool


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_claims(claims: dict[str, Any], key: bytes) -> str:
    """A token carrying ``claims`` and their HMAC, URL-safe."""
    body = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    mac = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
    return f"{body}.{mac}"


def verify_claims(token: str, key: bytes, altered: PausepointError) -> dict[str, Any]:
    """The claims ``token`` carries, if ``key`` signed them; else raises ``altered``."""
    if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
        raise altered
    body, mac = token.split(".")
    expected = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(mac, expected):
        raise altered
    try:
        claims = json.loads(_unb64(body))
    except (ValueError, binascii.Error):
        raise altered from None
    if not isinstance(claims, dict):
        raise altered
    return claims


def sign(link: DecisionLink, key: bytes) -> str:
    """The token of ``link``: its claims and their HMAC, URL-safe."""
    return sign_claims(link.claims(), key)


def new_link(
    org_id: str,
    execution_id: str,
    pause_id: str,
    approver: str,
    action: Action,
    expires_at: float,
    groups: tuple[str, ...] = (),
) -> DecisionLink:
    return DecisionLink(
        org_id,
        execution_id,
        pause_id,
        approver,
        action,
        int(expires_at),
        tuple(groups),
        secrets.token_urlsafe(8),
    )


def verify(token: str, key: bytes, now: float) -> DecisionLink:
    """The link ``token`` stands for; ``LinkRefused`` (or ``LinkExpired``) saying why not."""
    altered = LinkRefused(
        "this link is not valid: it was altered, cut short, or not made by this server"
    )
    claims = verify_claims(token, key, altered)
    try:
        link = DecisionLink(
            org_id=str(claims["o"]),
            execution_id=str(claims["e"]),
            pause_id=str(claims["p"]),
            approver=str(claims["u"]),
            action=claims["a"],
            expires_at=int(claims["x"]),
            groups=tuple(str(group) for group in claims.get("g") or ()),
            nonce=str(claims.get("n", "")),
        )
    except (ValueError, KeyError, TypeError):
        raise altered from None
    if link.action not in ACTIONS:
        raise altered
    if now >= link.expires_at:
        raise LinkExpired(f"this link expired at {_when(link.expires_at)}")
    return link


def link_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}{LINK_PATH}{token}"


def _when(epoch: float) -> str:
    from pausepoint.engine.state import iso

    return iso(epoch)
