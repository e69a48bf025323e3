"""``pausepoint agent`` as a real subprocess, against the test model server."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agents import agent_tools
from tests.agents.model_server import ModelServer, Reply, model_server, tool_call
from tests.e2e.cli_helpers import Cli, Terminal

pytestmark = pytest.mark.e2e  # the CLI as a real subprocess


@pytest.fixture
def model() -> Iterator[ModelServer]:
    with model_server() as server:
        yield server


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    shutil.copy(agent_tools.__file__, tmp_path / "agent_tools.py")
    return Cli(tmp_path / "agent.db", tmp_path)


def agent_args(model: ModelServer, *extra: str) -> list[str]:
    return [
        "agent",
        "Add 2 and 3",
        "--model",
        "test-model",
        "--base-url",
        model.url,
        "--tool",
        "agent_tools:add",
        *extra,
    ]


def test_agent_runs_a_task_with_a_tool_and_prints_the_conversation(
    cli: Cli, model: ModelServer
) -> None:
    model.by_turn({1: Reply("", [tool_call("c1", "add", a=2, b=3)]), 2: Reply("2 + 3 = 5")})
    result = cli(*agent_args(model, "--no-input", "--system", "Be exact."))
    assert result.code == 0, str(result)
    assert "→ add" in result.stdout and '{"a": 2, "b": 3}' in result.stdout
    assert '← {"value": 5}' in result.stdout
    assert "answer: 2 + 3 = 5" in result.stdout
    assert "COMPLETED" in result.stdout
    assert "Traceback" not in result.output
    first = model.requests[0]
    assert [m["role"] for m in first["messages"]] == ["system", "user"]
    assert first["tools"][0]["function"]["name"] == "add"


def test_a_failing_model_is_one_clear_line_and_a_non_zero_exit(cli: Cli) -> None:
    result = cli("agent", "hi", "--model", "m", "--base-url", "http://127.0.0.1:9/v1", "--no-input")
    assert result.code == 1, str(result)
    assert "cannot reach" in result.stdout
    assert "Traceback" not in result.output


def test_typing_a_line_while_it_runs_injects_it_and_approval_is_asked(
    cli: Cli, model: ModelServer
) -> None:
    model.by_turn(
        {
            1: Reply("", [tool_call("c1", "add", a=2, b=3)], delay=1.5),
            2: Reply("5, in euros"),
        }
    )
    argv = cli.argv(agent_args(model, "--approve", "add"))
    terminal = Terminal(argv, cwd=cli.cwd, env=cli.env)
    try:
        terminal.expect("type a line to tell the agent something")
        model.wait_started(1)
        terminal.sendline("answer in euros")
        terminal.expect(r"\+ user: answer in euros")
        terminal.expect("needs your approval")
        terminal.expect(r"decision \(")
        terminal.sendline("approve")
        terminal.expect(r"reason \(")
        terminal.sendline("")
        terminal.expect(r"arguments \(")
        terminal.sendline('{"a": 2, "b": 40}')
        terminal.expect("answer: 5, in euros")
        terminal.expect("COMPLETED")
        code = terminal.wait()
    finally:
        terminal.close()
    assert code == 0, terminal.text
    assert "Traceback" not in terminal.text
    second = model.requests[1]["messages"]
    assert second[-2]["content"] == '{"value": 42}'  # the edited arguments ran
    assert second[-1] == {"role": "user", "content": "answer in euros"}
