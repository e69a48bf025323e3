"""The ``pausepoint`` command line.

Locally, every command talks to the database through :class:`pausepoint.Engine`,
so a CLI process and a server can share one SQLite file: commands written here
are picked up by whichever process runs the execution, and an execution nobody
runs any more continues in the calling process.

With ``--url`` (or ``$PAUSEPOINT_URL``) the read, control, approval, ``flows``
and ``start`` commands talk to a server over HTTP instead, with the API key from
``--api-key`` or ``$PAUSEPOINT_API_KEY``. Both are a
:class:`~pausepoint.surface.ControlSurface`, so each command is written once.

The package by concept: ``options`` (the grammar), ``render`` (output shared by
all commands), ``target`` (local engine or remote client), ``live`` (following
an execution in the terminal), ``executions``, ``approvals`` (``approve``,
``deny``, ``inbox``), ``links`` (``link``, ``callback``: URLs that need no
key), ``flows``, ``keys``, ``serve`` (server, worker, dev
services) and ``agent`` (the agent chat view).
"""

from pausepoint.cli.main import main
from pausepoint.cli.options import UsageError, build_parser, settings_for

__all__ = ["UsageError", "build_parser", "main", "settings_for"]
