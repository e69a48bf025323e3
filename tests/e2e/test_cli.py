"""The ``pausepoint`` CLI end to end: real processes sharing one SQLite file.

Each test has its own database under ``tmp_path`` and its own small flow
files; the CLI runs as a subprocess (in a pseudo-terminal for the interactive
tests) with ``PAUSEPOINT_POLL_INTERVAL=0.05``. Waiting is always a poll with a
deadline, never a fixed sleep.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cli_helpers import EXECUTION_ID, Cli, Result, Terminal

GATE = """\
id: gate
namespace: e2e
tasks:
  - id: before
    type: return
    format: prepared
  - id: approval
    type: pause
    onResume:
      - id: approved
        type: BOOLEAN
        defaults: true
        description: Approve the release?
      - id: note
        type: STRING
  - id: after
    type: return
    format: "{{ outputs.approval.onResume.approved }} / {{ outputs.approval.onResume.note }}"
"""

STEPS_MODULE = """\
import time


def step(n, seconds=0.3):
    time.sleep(seconds)
    return {"n": n}


def boom():
    raise ValueError("boom from e2e")
"""


def slow_flow(steps: int, seconds: float = 0.3) -> str:
    """``steps`` python tasks of ``seconds`` each, then one reading the context."""
    lines = ["id: slow", "namespace: e2e", "tasks:"]
    for n in range(1, steps + 1):
        lines += [
            f"  - id: s{n}",
            "    type: python",
            "    function: e2e_steps:step",
            f"    kwargs: {{n: {n}, seconds: {seconds}}}",
        ]
    lines += [
        "  - id: ctx",
        "    type: return",
        '    format: "{{ context.messages | length }}"',
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    (tmp_path / "e2e_steps.py").write_text(STEPS_MODULE)
    return Cli(tmp_path / "x.db", tmp_path)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def assert_one_error_line(result: Result, code: int = 1) -> str:
    """Exit ``code``, no traceback anywhere, exactly one ``error:`` line on stderr."""
    assert result.code == code, str(result)
    assert "Traceback" not in result.output, str(result)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr:\n{result}"
    assert lines[0].startswith("error:"), str(result)
    return lines[0]


def event_lines(text: str) -> list[tuple[int, str]]:
    """(seq, type) of each event line printed by ``events`` (continuations skipped)."""
    found = re.findall(r"(?m)^\s*(\d+) \d{4}-\d\d-\d\dT\S+ ([a-z_]+\.[a-z_]+)\b", text)
    return [(int(seq), kind) for seq, kind in found]


def runs_by_task(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {run["task_id"]: run for run in view["task_runs"]}


def started_after(cli: Cli, execution_id: str, marker: str) -> list[str]:
    """Task ids started after the first ``marker`` event (e.g. workflow.pausing)."""
    result = cli("events", execution_id)
    assert result.code == 0, str(result)
    kinds = event_lines(result.stdout)
    assert marker in [kind for _, kind in kinds], result.stdout
    after = kinds[[kind for _, kind in kinds].index(marker) :]
    return [kind for _, kind in after if kind == "task.started"]


# -- validate ------------------------------------------------------------------


def test_validate_ok(cli: Cli, tmp_path: Path) -> None:
    write(tmp_path, "gate.yaml", GATE)
    result = cli("validate", "gate.yaml")
    assert result.code == 0, str(result)
    assert "ok" in result.stdout and "e2e.gate" in result.stdout
    assert result.stderr == ""


BAD_FLOWS = {
    "malformed_yaml": (
        "id: broken\nnamespace: e2e\ntasks:\n  - id: a\n    type: log\n    message: [unclosed\n",
        ["broken.yaml:7", "invalid YAML"],
    ),
    "unknown_task_type": (
        "id: broken\nnamespace: e2e\ntasks:\n  - id: a\n    type: log\n    message: hi\n"
        "  - id: b\n    type: io.kestra.plugin.nope.Thing\n",
        ["broken.yaml:8", "tasks[1].type", "io.kestra.plugin.nope.Thing"],
    ),
    "duplicate_task_id": (
        "id: broken\nnamespace: e2e\ntasks:\n  - id: a\n    type: log\n    message: hi\n"
        "  - id: a\n    type: log\n    message: again\n",
        ["broken.yaml:7", "tasks[1].id", "duplicate task id 'a'"],
    ),
    "bad_duration": (
        "id: broken\nnamespace: e2e\ntasks:\n  - id: wait\n    type: pause\n"
        "    pauseDuration: P5X\n",
        ["broken.yaml:6", "tasks[0].pauseDuration", "'P5X'"],
    ),
    "bad_template": (
        "id: broken\nnamespace: e2e\ntasks:\n  - id: a\n    type: log\n"
        '    message: "{{ inputs.x "\n',
        ["broken.yaml:6", "tasks[0].message", "template"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FLOWS))
def test_validate_reports_bad_flow_on_one_line(cli: Cli, tmp_path: Path, case: str) -> None:
    text, expected = BAD_FLOWS[case]
    write(tmp_path, "broken.yaml", text)
    result = cli("validate", "broken.yaml")
    line = assert_one_error_line(result)
    for fragment in expected:
        assert fragment in line, f"{fragment!r} missing from {line!r}"
    assert result.stdout == ""


def test_validate_missing_file(cli: Cli) -> None:
    line = assert_one_error_line(cli("validate", "nope.yaml"))
    assert "nope.yaml" in line


# -- unknown ids and usage errors -----------------------------------------------


def test_unknown_execution_id_is_one_clear_line(cli: Cli) -> None:
    missing = "0" * 24
    commands = [
        ("show", missing),
        ("state", missing),
        ("events", missing),
        ("events", missing, "--follow"),
        ("pause", missing, "--reason", "x"),
        ("resume", missing, "-i", "a=b"),
        ("cancel", missing),
        ("terminate", missing, "--reason", "x"),
        ("inject", missing, "hello"),
    ]
    for result in cli.many(*commands):
        line = assert_one_error_line(result)
        assert missing in line and "not found" in line, str(result)


TYPED = """\
id: typed
namespace: e2e
inputs:
  - id: count
    type: INT
tasks:
  - id: a
    type: return
    format: "{{ inputs.count }}"
"""


def test_usage_errors_exit_2(cli: Cli, tmp_path: Path) -> None:
    write(tmp_path, "gate.yaml", GATE)
    write(tmp_path, "typed.yaml", TYPED)
    bad_resume, bad_run, bad_label, no_reason, bad_input, no_file = cli.many(
        ("resume", "0" * 24, "-i", "approved"),
        ("run", "gate.yaml", "-i", "novalue"),
        ("run", "gate.yaml", "-l", "=x"),
        ("terminate", "0" * 24),
        ("run", "typed.yaml", "-i", "count=abc"),
        ("run", "missing.yaml"),
    )
    for result, fragment in (
        (bad_resume, "'approved'"),
        (bad_run, "'novalue'"),
        (bad_label, "'=x'"),
    ):
        line = assert_one_error_line(result, code=2)
        assert "key=value" in line and fragment in line, str(result)
    assert no_reason.code == 2, str(no_reason)
    assert "--reason" in no_reason.stderr and "Traceback" not in no_reason.output
    # Not usage errors, but refused the same way: exit 1, one line.
    assert "count" in assert_one_error_line(bad_input) and "abc" in bad_input.stderr
    # A refused command line starts nothing.
    listed = cli("ls")
    assert listed.code == 0 and not EXECUTION_ID.search(listed.stdout), str(listed)
    assert "missing.yaml" in assert_one_error_line(no_file)


def test_bad_setting_is_one_line(tmp_path: Path) -> None:
    result = Cli(tmp_path / "x.db", tmp_path, PAUSEPOINT_POLL_INTERVAL="0")("ls")
    assert result.code != 0, str(result)
    assert "Traceback" not in result.output, str(result)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), str(result)
    assert "poll_interval" in lines[0]


# -- run, not in a terminal ------------------------------------------------------


def test_run_completed_exits_0(cli: Cli, tmp_path: Path) -> None:
    write(
        tmp_path,
        "hello.yaml",
        "id: hello\nnamespace: e2e\ninputs:\n  - id: name\n    type: STRING\n"
        'tasks:\n  - id: greet\n    type: return\n    format: "hi {{ inputs.name }}"\n',
    )
    result = cli("run", "hello.yaml", "-i", "name=Ada", "-l", "team=ops")
    assert result.code == 0, str(result)
    execution_id = EXECUTION_ID.search(result.stdout)
    assert execution_id, str(result)
    assert f"execution {execution_id.group(0)} COMPLETED" in result.stdout
    assert "Traceback" not in result.output
    view = cli.show(execution_id.group(0))
    assert view["state"] == "COMPLETED"
    assert view["labels"] == {"team": "ops"}
    assert runs_by_task(view)["greet"]["outputs"] == {"value": "hi Ada"}


def test_run_failed_exits_non_zero(cli: Cli, tmp_path: Path) -> None:
    write(
        tmp_path,
        "fail.yaml",
        "id: fail\nnamespace: e2e\ntasks:\n"
        "  - id: explode\n    type: python\n    function: e2e_steps:boom\n",
    )
    result = cli("run", "fail.yaml")
    assert result.code != 0, str(result)
    execution_id = EXECUTION_ID.search(result.stdout)
    assert execution_id, str(result)
    assert f"execution {execution_id.group(0)} FAILED" in result.stdout
    assert "boom from e2e" in result.stdout
    assert "Traceback" not in result.output
    assert cli.show(execution_id.group(0))["state"] == "FAILED"


def test_run_waits_out_a_short_pause_duration(cli: Cli, tmp_path: Path) -> None:
    write(
        tmp_path,
        "timer.yaml",
        "id: timer\nnamespace: e2e\ntasks:\n"
        "  - id: wait\n    type: pause\n    pauseDuration: PT0.3S\n"
        "  - id: after\n    type: return\n    format: done\n",
    )
    result = cli("run", "timer.yaml")
    assert result.code == 0, str(result)
    assert re.search(r"execution [0-9a-f]{24} COMPLETED", result.stdout), str(result)
    view = cli.show(EXECUTION_ID.search(result.stdout).group(0))  # type: ignore[union-attr]
    runs = runs_by_task(view)
    assert runs["after"]["outputs"] == {"value": "done"}
    assert runs["wait"]["state"] == "SUCCESS"


# -- a Pause task, then other processes on the same database -------------------


def test_paused_execution_is_resumed_from_another_process(cli: Cli, tmp_path: Path) -> None:
    write(tmp_path, "gate.yaml", GATE)
    run = cli("run", "gate.yaml")
    assert run.code != 0, str(run)
    execution_id = EXECUTION_ID.search(run.stdout).group(0)  # type: ignore[union-attr]
    assert "paused" in run.stdout.lower(), str(run)
    assert f"pausepoint resume {execution_id}" in run.stdout, str(run)
    assert "Traceback" not in run.output

    listed, state = cli.many(("ls", "--state", "PAUSED"), ("state", execution_id))
    assert listed.code == 0 and execution_id in listed.stdout, str(listed)
    assert "PAUSED" in listed.stdout
    assert state.code == 0, str(state)
    assert "PAUSED" in state.stdout and "p-t2" in state.stdout and "approval" in state.stdout

    # A value that does not validate: refused, names the input, still paused.
    bad = cli("resume", execution_id, "-i", "approved=maybe", "-i", "note=x")
    assert bad.code == 1 and "Traceback" not in bad.output, str(bad)
    assert bad.stderr.startswith("error:") and "approved" in bad.stderr, str(bad)
    assert "maybe" in bad.stderr
    assert cli.state(execution_id)["state"] == "PAUSED"

    # Nobody runs it any more: the resuming process continues it to the end.
    good = cli("resume", execution_id, "-i", "approved=false", "-i", "note=ship it")
    assert good.code == 0, str(good)
    assert "Traceback" not in good.output
    view = cli.show(execution_id)
    assert view["state"] == "COMPLETED", view
    runs = runs_by_task(view)
    assert runs["approval"]["outputs"]["onResume"] == {"approved": False, "note": "ship it"}
    assert runs["approval"]["outputs"]["resumed"]["by"] == "cli"
    assert runs["after"]["outputs"] == {"value": "False / ship it"}

    shown, events, followed = cli.many(
        ("show", execution_id), ("events", execution_id), ("events", execution_id, "--follow")
    )
    assert shown.code == 0 and "COMPLETED" in shown.stdout, str(shown)
    assert "ship it" in shown.stdout
    assert events.code == 0, str(events)
    listed_events = event_lines(events.stdout)
    seqs = [seq for seq, _ in listed_events]
    assert seqs == list(range(1, len(seqs) + 1)), events.stdout
    kinds = [kind for _, kind in listed_events]
    assert kinds[0] == "workflow.started" and kinds[-1] == "workflow.completed", kinds
    assert "workflow.paused" in kinds and "workflow.resumed" in kinds
    # --follow on a finished execution prints everything, then exits.
    assert followed.code == 0, str(followed)
    assert event_lines(followed.stdout) == listed_events
    # Checked last so that the rest of the story is checked even if this fails.
    assert_one_error_line(bad)


def test_events_json_is_one_json_object_per_line(cli: Cli, tmp_path: Path) -> None:
    write(tmp_path, "gate.yaml", GATE)
    run = cli("run", "gate.yaml")
    execution_id = EXECUTION_ID.search(run.stdout).group(0)  # type: ignore[union-attr]
    result = cli("events", execution_id, "--json")
    assert result.code == 0, str(result)
    events = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "workflow.paused"


# -- control from a second process while `run` runs a slow flow ------------------


def test_inject_and_pause_while_running(cli: Cli, tmp_path: Path) -> None:
    write(tmp_path, "slow.yaml", slow_flow(14))
    runner = cli.start("run", "slow.yaml")
    try:
        execution_id = runner.read_execution_id()
        inject = cli("inject", execution_id, "use the EU template")
        assert inject.code == 0, str(inject)
        pause = cli("pause", execution_id, "--reason", "review the draft")
        assert pause.code == 0, str(pause)
        assert re.search(r"PAUS(ING|ED)", pause.stdout), str(pause)
        finished = runner.finish()
    finally:
        runner.kill()
    # The run process stops at the next checkpoint and leaves it paused.
    assert finished.code != 0, str(finished)
    assert f"pausepoint resume {execution_id}" in finished.stdout, str(finished)
    assert f"execution {execution_id} PAUSED" in finished.stdout, str(finished)

    view = cli.show(execution_id)
    assert view["state"] == "PAUSED", view
    assert view["pause_reason"] == "review the draft"
    runs = view["task_runs"]
    assert runs and all(run["state"] == "SUCCESS" for run in runs), runs
    assert len(runs) < 14, "the pause came too late to stop anything"
    assert started_after(cli, execution_id, "workflow.pausing") == []
    shown = cli("show", execution_id)
    assert "use the EU template" in shown.stdout, str(shown)
    assert [m["message"] for m in view["context"]] == ["use the EU template"]

    # Resumed from yet another process: it runs the rest, and sees the injection.
    resumed = cli("resume", execution_id)
    assert resumed.code == 0, str(resumed)
    view = cli.show(execution_id)
    assert view["state"] == "COMPLETED", view
    runs_done = runs_by_task(view)
    assert [runs_done[f"s{n}"]["outputs"] for n in range(1, 15)] == [{"n": n} for n in range(1, 15)]
    assert runs_done["ctx"]["outputs"] == {"value": 1}


def test_cancel_while_running(cli: Cli, tmp_path: Path) -> None:
    write(tmp_path, "slow.yaml", slow_flow(12))
    runner = cli.start("run", "slow.yaml")
    try:
        execution_id = runner.read_execution_id()
        cancel = cli("cancel", execution_id, "--reason", "wrong input")
        assert cancel.code == 0, str(cancel)
        finished = runner.finish()
    finally:
        runner.kill()
    assert finished.code != 0, str(finished)
    assert f"execution {execution_id} CANCELLED" in finished.stdout, str(finished)
    assert "Traceback" not in finished.output
    view = cli.show(execution_id)
    assert view["state"] == "CANCELLED", view
    assert "ctx" not in runs_by_task(view)
    assert started_after(cli, execution_id, "workflow.cancelling") == []


def test_terminate_while_running(cli: Cli, tmp_path: Path) -> None:
    write(tmp_path, "slow.yaml", slow_flow(12))
    runner = cli.start("run", "slow.yaml")
    try:
        execution_id = runner.read_execution_id()
        no_reason = cli("terminate", execution_id)
        assert no_reason.code == 2, str(no_reason)
        assert "--reason" in no_reason.stderr and "Traceback" not in no_reason.output
        terminate = cli("terminate", execution_id, "--reason", "runaway")
        assert terminate.code == 0, str(terminate)
        finished = runner.finish()
    finally:
        runner.kill()
    assert finished.code != 0, str(finished)
    assert f"execution {execution_id} TERMINATED" in finished.stdout, str(finished)
    view = cli.show(execution_id)
    assert view["state"] == "TERMINATED", view
    assert "ctx" not in runs_by_task(view)
    # Once terminated, control commands are refused with a reason.
    refused = cli("inject", execution_id, "too late")
    line = assert_one_error_line(refused)
    assert "terminated" in line.lower()


# -- interactive, in a pseudo-terminal ----------------------------------------------


def prompt(name: str) -> str:
    """The regex of one onResume prompt, e.g. ``  approved (BOOLEAN) [True]: ``."""
    return rf"{name} \([A-Z]+\)[^\n:]*: "


def test_interactive_run_prompts_for_resume_inputs(cli: Cli, tmp_path: Path) -> None:
    write(
        tmp_path,
        "gate.yaml",
        GATE.replace(
            "      - id: note\n        type: STRING\n",
            "      - id: note\n        type: STRING\n"
            "      - id: channel\n        type: STRING\n        defaults: general\n",
        ).replace("onResume.note }}", "onResume.note }} #{{ outputs.approval.onResume.channel }}"),
    )
    terminal = Terminal(cli.argv(["run", "gate.yaml"]), cwd=tmp_path, env=cli.env)
    try:
        terminal.expect(r"paused at task 'approval' \(p-t2\)")
        terminal.expect("Approve the release")
        assert "[True]" in terminal.expect(prompt("approved")).group(0)
        terminal.sendline("maybe")
        terminal.expect(prompt("note"))
        terminal.sendline("first try")
        channel = terminal.expect(prompt("channel")).group(0)
        terminal.sendline("")
        # The invalid boolean is named, and every input is asked for again.
        terminal.expect(r"approved: [^\n]*maybe")
        terminal.expect(prompt("approved"))
        terminal.sendline("no")
        terminal.expect(prompt("note"))
        terminal.sendline("second try")
        terminal.expect(prompt("channel"))
        terminal.sendline("")
        done = terminal.expect(r"execution ([0-9a-f]{24}) COMPLETED")
        code = terminal.wait()
    finally:
        terminal.close()
    assert code == 0, terminal.text
    assert "Traceback" not in terminal.text
    view = cli.show(done.group(1))
    runs = runs_by_task(view)
    assert runs["approval"]["outputs"]["onResume"] == {
        "approved": False,
        "note": "second try",
        "channel": "general",
    }
    assert runs["after"]["outputs"] == {"value": "False / second try #general"}
    # The prompt shows every default, as README shows `[Well-deserved vacation]`.
    assert "[general]" in channel, f"default not shown in prompt {channel!r}"


def test_ctrl_c_pauses_and_declining_leaves_it_paused(cli: Cli, tmp_path: Path) -> None:
    write(tmp_path, "slow.yaml", slow_flow(8))
    terminal = Terminal(cli.argv(["run", "slow.yaml"]), cwd=tmp_path, env=cli.env)
    try:
        execution_id = terminal.expect(r"[0-9a-f]{24}").group(0)
        terminal.expect(r"s2\s+\W\s*RUNNING")
        terminal.send(b"\x03")
        terminal.expect("pausing at the next checkpoint")
        question = terminal.expect(r"resume now\?[^\n]*").group(0)
        terminal.sendline("n")
        terminal.expect(rf"execution {execution_id} PAUSED")
        code = terminal.wait()
    finally:
        terminal.close()
    assert code != 0, terminal.text
    assert "Traceback" not in terminal.text
    view = cli.show(execution_id)
    assert view["state"] == "PAUSED", view
    assert all(run["state"] == "SUCCESS" for run in view["task_runs"]), view["task_runs"]
    assert "ctx" not in runs_by_task(view)
    assert started_after(cli, execution_id, "workflow.pausing") == []
    assert "[y/N]" in question, f"the question does not show its choices: {question!r}"


def test_second_ctrl_c_while_pausing_leaves_it_paused(cli: Cli, tmp_path: Path) -> None:
    # Steps of 2 s keep the execution PAUSING long enough to press Ctrl-C twice.
    write(tmp_path, "slow.yaml", slow_flow(3, seconds=2.0))
    terminal = Terminal(cli.argv(["run", "slow.yaml"]), cwd=tmp_path, env=cli.env)
    started = time.monotonic()
    try:
        execution_id = terminal.expect(r"[0-9a-f]{24}").group(0)
        terminal.expect(r"s1\s+\W\s*RUNNING")
        terminal.send(b"\x03")
        terminal.expect("pausing at the next checkpoint")
        terminal.expect(r"\bPAUSING\b")  # the live view: the pause is accepted
        terminal.send(b"\x03")
        code = terminal.wait()
    finally:
        terminal.close()
    assert code != 0, terminal.text
    assert "Traceback" not in terminal.text
    assert time.monotonic() - started < 15
    view = cli.wait_state(execution_id, {"PAUSED"}, timeout=3.0)
    assert "s2" not in runs_by_task(view), view["task_runs"]
