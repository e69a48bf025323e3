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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pausepoint.cli.options import UsageError, settings_for
from pausepoint.surface import ControlSurface

if TYPE_CHECKING:
    from pausepoint.service.engine import Engine

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
    }
)


@dataclass
class Target:
    """The control plane a command calls, and this process's engine when it is local."""

    plane: ControlSurface
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
            yield Target(client)
        return
    async with open_engine(args, python_paths=python_paths, **settings) as engine:
        yield Target(engine.acting_as("cli"), engine)


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
