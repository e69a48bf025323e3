"""Options every command takes work before or after it; ``--help`` loads nothing heavy.

Each command runs as a real subprocess. The import checks run ``main`` in a
fresh interpreter and then list which of the heavy modules it loaded: none may
be, so that ``--help`` (and the remote commands, see ``test_cli_remote``) answer
without importing the server or the database layer.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.cli_helpers import (
    COMMAND,
    EXECUTION_ID,
    base_env,
    heavy_modules_in,
    heavy_modules_probe,
)

HELLO = """\
id: hello
namespace: options.e2e
tasks:
  - id: say
    type: return
    format: hello
"""


def heavy_modules_loaded_by(*argv: str) -> list[str]:
    """Run ``pausepoint ARGV`` in a fresh interpreter; the heavy modules it imported."""
    completed = subprocess.run(
        heavy_modules_probe(*argv),
        capture_output=True,
        text=True,
        env=base_env(),
        timeout=60,
        check=False,
    )
    return heavy_modules_in(completed.stderr)


def pausepoint(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=base_env(),
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("where", ["before", "after"])
def test_db_works_before_or_after_the_command(tmp_path: Path, where: str) -> None:
    (tmp_path / "hello.yaml").write_text(HELLO)
    db = f"sqlite:///{tmp_path / 'chosen.db'}"
    command = ["run", "hello.yaml"]
    argv = ["--db", db, *command] if where == "before" else [*command, "--db", db]

    ran = pausepoint(*argv, cwd=tmp_path)

    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert (tmp_path / "chosen.db").exists()
    assert not (tmp_path / "pausepoint.db").exists()
    execution = EXECUTION_ID.search(ran.stdout)
    assert execution is not None, ran.stdout
    listed = pausepoint("flows", "ls", "--db", db, cwd=tmp_path)
    assert "options.e2e.hello" in listed.stdout, listed.stdout + listed.stderr
    shown = pausepoint("--db", db, "state", execution.group(0), cwd=tmp_path)
    assert "COMPLETED" in shown.stdout, shown.stdout + shown.stderr


def test_an_option_after_the_command_wins_over_the_same_before_it(tmp_path: Path) -> None:
    (tmp_path / "hello.yaml").write_text(HELLO)
    first, second = tmp_path / "first.db", tmp_path / "second.db"

    ran = pausepoint("--db", str(first), "run", "hello.yaml", "--db", str(second), cwd=tmp_path)

    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert second.exists() and not first.exists()


@pytest.mark.parametrize("where", ["before", "after"])
def test_url_and_api_key_work_before_or_after_the_command(tmp_path: Path, where: str) -> None:
    # Nothing listens on port 9: the error names the URL, which shows it was used.
    remote = ["--url", "http://127.0.0.1:9", "--api-key", "k"]
    command = ["state", "0123456789abcdef01234567"]
    argv = [*remote, *command] if where == "before" else [*command, *remote]

    ran = pausepoint(*argv, cwd=tmp_path)

    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert "127.0.0.1:9" in ran.stderr and "Traceback" not in ran.stderr
    assert not (tmp_path / "pausepoint.db").exists()  # the database was never opened


def test_help_loads_neither_the_server_nor_the_database_layer() -> None:
    assert heavy_modules_loaded_by("--help") == []


def test_a_mistake_on_the_command_line_loads_nothing_heavy_either() -> None:
    assert heavy_modules_loaded_by("state") == []  # the id is missing
