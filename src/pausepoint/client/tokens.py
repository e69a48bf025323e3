"""What the clients return for decision links and callback tokens.

The server's replies (``service.links.MintedLink``, ``service.callbacks.MintedCallback``
and ``CallbackOutcome``, dataclasses of the server) as public models, field for field:
the client imports nothing of the server, and a test pins that the fields agree.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from pausepoint.models import PublicModel


class MintedLink(PublicModel):
    """A decision link: whoever opens ``url`` votes on one approval request as ``approver``."""

    url: str = Field(description="The link (absolute: a server's path is made whole).")
    token: str = Field(description="The signed token at the end of the link.")
    approver: str
    action: Literal["approve", "deny", "review"]
    expires_at: str


class MintedCallback(PublicModel):
    """A callback token: a POST to ``url`` completes the Pause task ``task_id``'s wait."""

    url: str = Field(description="The callback URL (absolute: a server's path is made whole).")
    token: str = Field(description="The signed token at the end of the URL.")
    task_id: str
    expires_at: str


class CallbackOutcome(PublicModel):
    """What a completion did: ``applied`` (the wait ended), ``kept`` (the task does not wait
    yet: applied when it does) or ``accepted``; ``replayed`` when it is the first
    completion's result returned again (a second completion changes nothing)."""

    execution_id: str
    task_id: str
    status: str  # kept, applied or accepted
    inputs: dict[str, Any]
    completed_at: str
    replayed: bool
