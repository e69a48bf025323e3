"""What a command talks to: this process's ``Engine`` on the database, or a server over HTTP.

Both are a :class:`~pausepoint.surface.ControlSurface`, so a command is written
once. Only the remote path stays light: it imports the HTTP client, never the
server, the store or a runtime.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from pausepoint.cli.options import UsageError, settings_for
from pausepoint.surface import ControlSurface

if TYPE_CHECKING:
    from pausepoint.client.calls import LinkDecision
    from pausepoint.client.tokens import MintedCallback, MintedLink
    from pausepoint.models import ApprovalPage, ControlResult
    from pausepoint.service.engine import Engine
    from pausepoint.service.operations import Operation

R = TypeVar("R")

# Who the local commands act as: the audit trail's actor, and the voter of approvals.
LOCAL_ACTOR = "cli"
LOCAL_ROLE: Literal["admin"] = "admin"

# What a server answers; the other commands run here even with --url.
REMOTE_COMMANDS = frozenset(
    {
        "ls",
        "show",
        "state",
        "events",
        "pause",
        "resume",
        "cancel",
        "terminate",
        "inject",
        "flows",
        "start",
        "triggers",
        "approve",
        "deny",
        "inbox",
        "link",
        "callback",
    }
)


class Reviews(Protocol):
    """Votes on approval requests, the inbox, decision links and callback tokens, as
    :class:`~pausepoint.AsyncClient` has them.

    Not part of :class:`~pausepoint.surface.ControlSurface`: ``Engine`` takes the
    voter's name, groups and role as arguments (``vote``, ``approvals``), and
    mints links and tokens for a caller of the control plane, where a server
    reads who calls from the caller's key. :class:`LocalReviews` gives them for
    this process's engine.
    """

    async def review(
        self,
        execution_id: str,
        decision: Literal["approve", "deny"],
        *,
        comment: str | None = None,
        inputs: dict[str, Any] | None = None,
        pause_id: str | None = None,
    ) -> ControlResult: ...

    async def approvals(
        self,
        *,
        mine: bool = False,
        namespace: str | None = None,
        flow_id: str | None = None,
        labels: dict[str, str] | None = None,
        older_than: str | None = None,
        limit: int = 100,
    ) -> ApprovalPage: ...

    async def decision_link(
        self,
        execution_id: str,
        pause_id: str,
        approver: str,
        *,
        decision: LinkDecision = "review",
        groups: Sequence[str] = (),
        expires_in: str | None = None,
    ) -> MintedLink: ...

    async def callback(
        self, execution_id: str, task_id: str, *, expires_in: str | None = None
    ) -> MintedCallback: ...


class LocalReviews:
    """:class:`Reviews` on this process's engine: the local user, with full rights, votes.

    The local user is the engine's actor (``cli``, as for ``resume``): it is
    in no group, so a request whose approvers are only users or groups refuses
    its vote (list ``roles: [admin]`` among them to let it decide).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def review(
        self,
        execution_id: str,
        decision: Literal["approve", "deny"],
        *,
        comment: str | None = None,
        inputs: dict[str, Any] | None = None,
        pause_id: str | None = None,
    ) -> ControlResult:
        return await self.engine.vote(
            execution_id,
            decision,
            pause_id=pause_id,
            comment=comment,
            inputs=inputs,
            role=LOCAL_ROLE,
        )

    async def approvals(
        self,
        *,
        mine: bool = False,
        namespace: str | None = None,
        flow_id: str | None = None,
        labels: dict[str, str] | None = None,
        older_than: str | None = None,
        limit: int = 100,
    ) -> ApprovalPage:
        from pausepoint.service.approvals import Reviewer

        return await self.engine.approvals(
            Reviewer(self.engine.default_actor, (), LOCAL_ROLE),
            assigned_to_me=mine,
            namespace=namespace,
            flow_id=flow_id,
            labels=labels,
            older_than=older_than,
            limit=limit,
        )

    async def decision_link(
        self,
        execution_id: str,
        pause_id: str,
        approver: str,
        *,
        decision: LinkDecision = "review",
        groups: Sequence[str] = (),
        expires_in: str | None = None,
    ) -> MintedLink:
        """Minted through the control plane, as the API's route does: audited, as ``cli``."""
        from pausepoint.client.tokens import MintedLink
        from pausepoint.service.operations import MintLinkRequest

        operation = MintLinkRequest(
            execution_id=execution_id,
            pause_id=pause_id,
            approver=approver,
            decision=decision,
            groups=tuple(groups),
            expires_in=_seconds(expires_in),
        )
        minted = await self._call(operation)
        return MintedLink.model_validate(asdict(minted))

    async def callback(
        self, execution_id: str, task_id: str, *, expires_in: str | None = None
    ) -> MintedCallback:
        from pausepoint.client.tokens import MintedCallback
        from pausepoint.service.operations import MintCallbackRequest

        operation = MintCallbackRequest(
            execution_id=execution_id, task_id=task_id, expires_in=_seconds(expires_in)
        )
        minted = await self._call(operation)
        return MintedCallback.model_validate(asdict(minted))

    async def _call(self, operation: Operation[R]) -> R:
        from pausepoint.service.auth import Principal

        principal = Principal(self.engine.org_id, LOCAL_ROLE, self.engine.default_actor)
        return (await self.engine.call(operation, principal)).value


def _seconds(expires_in: str | None) -> float | None:
    """``--expires-in`` in seconds; the server's words when it is not a duration."""
    if expires_in is None:
        return None
    from pausepoint.errors import FieldError, InvalidInput
    from pausepoint.flow.durations import parse_duration

    try:
        return parse_duration(expires_in)
    except ValueError as error:
        raise InvalidInput(
            f"expires_in: {error}", [FieldError(("body", "expires_in"), str(error))]
        ) from None


@dataclass
class Target:
    """The control plane a command calls, its votes and inbox (``reviews``: the client
    itself, or :class:`LocalReviews`), and this process's engine when it is local."""

    plane: ControlSurface
    reviews: Reviews
    engine: Engine | None = None

    def runs_here(self, execution_id: str) -> bool:
        """Whether this process runs the execution, so following it here shows progress."""
        return self.engine is not None and self.engine.runs_here(execution_id)


@contextlib.asynccontextmanager
async def open_target(
    args: argparse.Namespace, *, python_paths: Sequence[Path] = (), **settings: Any
) -> AsyncIterator[Target]:
    """The server of ``--url`` for the commands it answers, else an engine on ``--db``."""
    if args.url and args.command in REMOTE_COMMANDS:
        if not args.url.startswith(("http://", "https://")):
            raise UsageError(f"--url must start with http:// or https://, got {args.url!r}")
        import_httpx_without_its_command_line()
        from pausepoint.client.async_client import AsyncClient

        async with AsyncClient(args.url, api_key=args.api_key) as client:
            yield Target(client, client)
        return
    async with open_engine(args, python_paths=python_paths, **settings) as engine:
        local = engine.acting_as(LOCAL_ACTOR)
        yield Target(local, LocalReviews(local), engine)


def import_httpx_without_its_command_line() -> None:
    """Import httpx, leaving out ``httpx.main`` (the ``httpx`` console script).

    httpx's ``__init__`` imports its own command line whenever click, rich and
    pygments are installed, as they are here: a fifth of a remote command's
    start-up, for a function this process never calls. A ``None`` in
    ``sys.modules`` makes that one import fail, which httpx expects (it then
    defines a ``main`` that asks for ``httpx[cli]``); the entry is removed
    afterwards, so ``import httpx._main`` works again for anyone who wants it.
    """
    if "httpx" in sys.modules:
        return
    sys.modules["httpx._main"] = None  # type: ignore[assignment]
    try:
        import httpx  # noqa: F401
    finally:
        del sys.modules["httpx._main"]


@contextlib.asynccontextmanager
async def open_engine(
    args: argparse.Namespace, *, python_paths: Sequence[Path] = (), **settings: Any
) -> AsyncIterator[Engine]:
    from pausepoint.service.engine import Engine

    async with Engine(settings_for(args, python_paths=python_paths, **settings)) as engine:
        yield engine
