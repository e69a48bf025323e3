"""``pausepoint dev postgres``: a PostgreSQL to try scale-out with, and the URL it prints works."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

from tests.e2e.cli_helpers import COMMAND, Cli, base_env

URL = re.compile(r"PostgreSQL on (postgresql://\S+)")


def test_dev_postgres_prints_a_url_the_other_commands_use(tmp_path: Path) -> None:
    server = subprocess.Popen(
        [*COMMAND, "dev", "postgres", "--data", str(tmp_path / "pg")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=base_env(),
        cwd=tmp_path,
    )
    try:
        assert server.stdout is not None
        deadline = time.monotonic() + 60
        found = None
        while found is None and time.monotonic() < deadline:
            line = server.stdout.readline()
            assert line, "dev postgres exited before printing its URL"
            found = URL.search(line)
        assert found is not None
        cli = Cli(tmp_path / "unused.db", tmp_path)
        created = cli("--db", found.group(1), "keys", "create", "--role", "admin", timeout=60)
        assert created.code == 0, str(created)
        listed = cli("--db", found.group(1), "keys", "list", timeout=60)
        assert "admin" in listed.stdout, str(listed)
    finally:
        server.send_signal(signal.SIGINT)
        out, _ = server.communicate(timeout=30)
    assert server.returncode == 0, out
    assert "PostgreSQL stopped" in out
    assert "Traceback" not in out
