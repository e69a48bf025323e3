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
    time.sleep(seconds)  # the step's work: Ctrl-C must land while it runs
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


def id_in(result: Result) -> str:
    """The execution id a non-interactive ``run`` printed."""
    match = EXECUTION_ID.search(result.stdout)
    assert match, f"no execution id printed:\n{result}"
    return match.group(0)


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


def show_and_events(cli: Cli, execution_id: str) -> tuple[dict[str, Any], str]:
    """``show --json`` (parsed) and ``events`` (text), run side by side."""
    shown, events = cli.many(("show", execution_id, "--json"), ("events", execution_id))
    assert shown.code == 0, str(shown)
    assert events.code == 0, str(events)
    return json.loads(shown.stdout), events.stdout


def started_after(events: str, marker: str) -> list[int]:
    """Seqs of the task.started events after the first ``marker`` (e.g. workflow.pausing)."""
    kinds = event_lines(events)
    assert marker in [kind for _, kind in kinds], events
    at = [kind for _, kind in kinds].index(marker)
    return [seq for seq, kind in kinds[at:] if kind == "task.started"]


# -- validate ------------------------------------------------------------------


BAD_FLOWS = {
    "malformed_yaml": (
        "id: broken\nnamespace: e2e\ntasks:\n  - id: a\n    type: log\n    message: [unclosed\n",
        ["{name}:7", "invalid YAML"],
    ),
    "unknown_task_type": (
        "id: broken\nnamespace: e2e\ntasks:\n  - id: a\n    type: log\n    message: hi\n"
        "  - id: b\n    type: io.kestra.plugin.nope.Thing\n",
        ["{name}:8", "tasks[1].type", "io.kestra.plugin.nope.Thing"],
    ),
    "duplicate_task_id": (
        "id: broken\nnamespace: e2e\ntasks:\n  - id: a\n    type: log\n    message: hi\n"
        "  - id: a\n    type: log\n    message: again\n",
        ["{name}:7", "tasks[1].id", "duplicate task id 'a'"],
    ),
    "bad_duration": (
        "id: broken\nnamespace: e2e\ntasks:\n  - id: wait\n    type: pause\n"
        "    pauseDuration: P5X\n",
        ["{name}:6", "tasks[0].pauseDuration", "'P5X'"],
    ),
    "bad_template": (
        "id: broken\nnamespace: e2e\ntasks:\n  - id: a\n    type: log\n"
        '    message: "{{ inputs.x "\n',
        ["{name}:6", "tasks[0].message", "template"],
    ),
}


def test_validate(cli: Cli, tmp_path: Path) -> None:
    """The good flow is ok; each bad one is one ``error:`` line naming file:line and field."""
    write(tmp_path, "gate.yaml", GATE)
    expected = {case: fragments for case, (_, fragments) in BAD_FLOWS.items()}
    for case, (text, _) in BAD_FLOWS.items():
        write(tmp_path, f"{case}.yaml", text)
    expected["nope"] = []  # no such file
    ok, *results = cli.many(
        ("validate", "gate.yaml"), *[("validate", f"{case}.yaml") for case in expected]
    )
    assert ok.code == 0, str(ok)
    assert "ok" in ok.stdout and "e2e.gate" in ok.stdout
    assert ok.stderr == ""
    problems = []
    for (case, fragments), result in zip(expected.items(), results, strict=True):
        name = f"{case}.yaml"
        try:
            line = assert_one_error_line(result)
            assert result.stdout == "", str(result)
            for fragment in [name, *(f.format(name=name) for f in fragments)]:
                assert fragment in line, f"{fragment!r} missing from {line!r}"
        except AssertionError as error:
            problems.append(f"[{case}] {error}")
    assert not problems, "\n\n".join(problems)


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
    bad_resume, bad_run, no_reason, bad_input = cli.many(
        ("resume", "0" * 24, "-i", "approved"),
        ("run", "gate.yaml", "-i", "novalue"),
        ("terminate", "0" * 24),
        ("run", "typed.yaml", "-i", "count=abc"),
    )
    for result, fragment in ((bad_resume, "'approved'"), (bad_run, "'novalue'")):
        line = assert_one_error_line(result, code=2)
        assert "key=value" in line and fragment in line, str(result)
    assert no_reason.code == 2, str(no_reason)
    assert "--reason" in no_reason.stderr and "Traceback" not in no_reason.output
    # Not a usage error, but refused the same way: exit 1, one line.
    assert "count" in assert_one_error_line(bad_input) and "abc" in bad_input.stderr
    # A refused command line starts nothing.
    listed = cli("ls")
    assert listed.code == 0 and not EXECUTION_ID.search(listed.stdout), str(listed)


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
    execution_id = id_in(result)
    assert f"execution {execution_id} COMPLETED" in result.stdout
    assert "Traceback" not in result.output
    view = cli.show(execution_id)
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
    execution_id = id_in(result)
    assert f"execution {execution_id} FAILED" in result.stdout
    assert "boom from e2e" in result.stdout
    assert "Traceback" not in result.output
    assert cli.show(execution_id)["state"] == "FAILED"


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
    view = cli.show(id_in(result))
    runs = runs_by_task(view)
    assert runs["after"]["outputs"] == {"value": "done"}
    assert runs["wait"]["state"] == "SUCCESS"


# -- a Pause task, then other processes on the same database -------------------


def test_paused_execution_is_resumed_from_another_process(cli: Cli, tmp_path: Path) -> None:
    write(tmp_path, "gate.yaml", GATE)
    run = cli("run", "gate.yaml")
    assert run.code != 0, str(run)
    execution_id = id_in(run)
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
    as_json, shown, events, followed, events_json = cli.many(
        ("show", execution_id, "--json"),
        ("show", execution_id),
        ("events", execution_id),
        ("events", execution_id, "--follow"),
        ("events", execution_id, "--json"),
    )
    view = json.loads(as_json.stdout)
    assert view["state"] == "COMPLETED", view
    runs = runs_by_task(view)
    assert runs["approval"]["outputs"]["onResume"] == {"approved": False, "note": "ship it"}
    assert runs["approval"]["outputs"]["resumed"]["by"] == "cli"
    assert runs["after"]["outputs"] == {"value": "False / ship it"}
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
    # Checked last so that the rest of the story is checked even if these fail.
    problems = []
    try:
        assert_one_error_line(bad)
    except AssertionError as error:
        problems.append(f"resume with a bad value: {error}")
    try:
        # --json prints one JSON object per line, whatever the terminal width.
        lines = [line for line in events_json.stdout.splitlines() if line.strip()]
        assert [json.loads(line)["seq"] for line in lines] == seqs, events_json.stdout
    except (AssertionError, ValueError) as error:
        problems.append(f"events --json: {error!r}\n{events_json.stdout}")
    assert not problems, "\n\n".join(problems)


# -- control from a second process while `run` runs a slow flow ------------------


def test_inject_and_pause_while_running(cli: Cli, tmp_path: Path) -> None:
    # 8 s of steps: two CLI processes must start and land their commands before the end,
    # on a machine that may be running another test suite beside this one.
    steps = 40
    write(tmp_path, "slow.yaml", slow_flow(steps, seconds=0.2))
    runner = cli.start("run", "slow.yaml")
    try:
        execution_id = runner.read_execution_id()
        inject, pause = cli.many(
            ("inject", execution_id, "use the EU template"),
            ("pause", execution_id, "--reason", "review the draft"),
        )
        assert inject.code == 0, str(inject)
        assert pause.code == 0, str(pause)
        assert re.search(r"PAUS(ING|ED)", pause.stdout), str(pause)
        finished = runner.finish()
    finally:
        runner.kill()
    # The run process stops at the next checkpoint and leaves it paused.
    assert finished.code != 0, str(finished)
    assert f"pausepoint resume {execution_id}" in finished.stdout, str(finished)
    assert f"execution {execution_id} PAUSED" in finished.stdout, str(finished)

    as_json, events, shown = cli.many(
        ("show", execution_id, "--json"), ("events", execution_id), ("show", execution_id)
    )
    view = json.loads(as_json.stdout)
    assert view["state"] == "PAUSED", view
    assert view["pause_reason"] == "review the draft"
    runs = view["task_runs"]
    assert runs and all(run["state"] == "SUCCESS" for run in runs), runs
    assert len(runs) < steps, "the pause came too late to stop anything"
    assert started_after(events.stdout, "workflow.pausing") == []
    assert "use the EU template" in shown.stdout, str(shown)
    assert [m["message"] for m in view["context"]] == ["use the EU template"]

    # Resumed from yet another process: it runs the rest, and sees the injection.
    resumed = cli("resume", execution_id)
    assert resumed.code == 0, str(resumed)
    view = cli.show(execution_id)
    assert view["state"] == "COMPLETED", view
    runs_done = runs_by_task(view)
    every = range(1, steps + 1)
    assert [runs_done[f"s{n}"]["outputs"] for n in every] == [{"n": n} for n in every]
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
    view, events = show_and_events(cli, execution_id)
    assert view["state"] == "CANCELLED", view
    assert "ctx" not in runs_by_task(view)
    assert started_after(events, "workflow.cancelling") == []


def test_terminate_while_running(cli: Cli, tmp_path: Path) -> None:
    # Long enough that two CLI processes start and answer before it ends, even on a
    # busy machine; terminate cuts it short anyway.
    write(tmp_path, "slow.yaml", slow_flow(60))
    runner = cli.start("run", "slow.yaml")
    try:
        execution_id = runner.read_execution_id()
        no_reason, terminate = cli.many(
            ("terminate", execution_id), ("terminate", execution_id, "--reason", "runaway")
        )
        assert no_reason.code == 2, str(no_reason)
        assert "--reason" in no_reason.stderr and "Traceback" not in no_reason.output
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
    view, events = show_and_events(cli, execution_id)
    assert view["state"] == "PAUSED", view
    assert all(run["state"] == "SUCCESS" for run in view["task_runs"]), view["task_runs"]
    assert "ctx" not in runs_by_task(view)
    assert started_after(events, "workflow.pausing") == []
    assert "[y/N]" in question, f"the question does not show its choices: {question!r}"


def test_second_ctrl_c_while_pausing_leaves_it_paused(cli: Cli, tmp_path: Path) -> None:
    # Steps of 1.5 s keep the execution PAUSING long enough to press Ctrl-C twice.
    write(tmp_path, "slow.yaml", slow_flow(3, seconds=1.5))
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


def test_validate_lists_every_problem_of_every_file_and_counts_them(
    cli: Cli, tmp_path: Path
) -> None:
    """Kestra users check a folder of flows: every unsupported feature, file:line each."""
    (tmp_path / "flows").mkdir()
    write(tmp_path, "flows/gate.yaml", GATE)
    write(
        tmp_path,
        "flows/kestra.yml",
        "id: k\nnamespace: e2e\ntasks:\n"
        "  - id: child\n    type: io.kestra.plugin.core.flow.Approval\n    quorum: 0\n"
        "  - id: query\n    type: io.kestra.plugin.jdbc.postgresql.Query\n"
        "  - id: sleep\n    type: io.kestra.plugin.core.flow.Sleep\n    duration: soon\n",
    )
    result = cli("validate", "flows")
    assert result.code == 1, str(result)
    assert "ok flows/gate.yaml" in result.stdout
    assert "1 of 2 flows load" in result.stdout
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: flows/kestra.yml:6 tasks[0].quorum: ")
    assert "a quorum counts at least 1 approval" in lines[0]
    assert lines[1].startswith("flows/kestra.yml:8 tasks[1].type: unknown task type")
    assert lines[2].startswith("flows/kestra.yml:11 tasks[2].duration: 'soon'")
    assert len(lines) == 3


def test_triggers_are_listed_paused_and_resumed_from_the_cli(cli: Cli, tmp_path: Path) -> None:
    write(
        tmp_path,
        "scheduled.yaml",
        "id: scheduled\nnamespace: e2e\ntriggers:\n"
        "  - id: every\n    type: io.kestra.plugin.core.trigger.Schedule\n"
        '    cron: "*/5 * * * *"\n'
        "tasks:\n  - id: a\n    type: log\n    message: hi\n",
    )
    assert cli("flows", "apply", "scheduled.yaml").code == 0
    paused = cli("triggers", "pause", "e2e.scheduled", "every")
    assert paused.code == 0, str(paused)
    assert "trigger every of e2e.scheduled: paused" in paused.stdout
    listed = cli("triggers", "ls", "e2e.scheduled")
    assert "every" in listed.stdout and "paused" in listed.stdout, str(listed)
    resumed = cli("triggers", "resume", "e2e.scheduled", "every", "--catch-up", "QUEUE")
    assert "resumed (QUEUE)" in resumed.stdout, str(resumed)
    missing = cli("triggers", "pause", "e2e.scheduled", "nope")
    assert missing.code == 1
    assert "flow e2e.scheduled has no trigger 'nope'" in missing.stderr
    bad = cli("triggers", "resume", "e2e.scheduled", "every", "--catch-up", "LATER")
    assert bad.code == 2
    assert "invalid choice: 'LATER'" in bad.stderr


def test_a_key_is_created_for_a_user_and_groups_and_listed_with_them(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "x.db", tmp_path, COLUMNS="200")  # the table's rows on one line each
    options = "--org acme --role operator --user alice@acme --group ops --group security"
    created = cli("keys", "create", *options.split(), "--name", "alice's laptop")
    assert created.code == 0, str(created)
    assert "(operator, org acme, user alice@acme, groups ops, security)" in created.stdout
    listed = cli("keys", "list", "--org", "acme")
    assert listed.code == 0, str(listed)
    [row] = [line for line in listed.stdout.splitlines() if "alice@acme" in line]
    assert "alice's laptop" in row and "ops, security" in row, str(listed)
    refused = cli("keys", "create", "--role", "viewer", "--group", "on call")
    assert "groups[0] 'on call' must be" in assert_one_error_line(refused)


def test_show_draws_the_subflow_tree(cli: Cli, tmp_path: Path) -> None:
    """`run` a parent whose subflow runs a grandchild; `show` draws all three levels."""
    write(
        tmp_path,
        "leaf.yaml",
        "id: leaf\nnamespace: e2e\ntasks:\n  - id: hi\n    type: return\n    format: leaf\n",
    )
    for parent, child in (("middle", "leaf"), ("top", "middle")):
        write(
            tmp_path,
            f"{parent}.yaml",
            f"id: {parent}\nnamespace: e2e\ntasks:\n  - id: call\n    type: subflow\n"
            f"    namespace: e2e\n    flowId: {child}\n",
        )
    assert cli("flows", "apply", "leaf.yaml", "middle.yaml").code == 0
    result = cli("run", "top.yaml")
    assert result.code == 0, str(result)
    top = id_in(result)
    shown = cli("show", top)
    assert shown.code == 0, str(shown)
    lines = shown.stdout.splitlines()
    start = lines.index("subflows (2):")
    middle, leaf = lines[start + 1], lines[start + 2]
    assert re.match(r"^  \S+ e2e\.middle COMPLETED", middle), shown.stdout
    assert re.match(r"^    \S+ e2e\.leaf COMPLETED", leaf), shown.stdout
    leaf_id = leaf.split()[0]
    assert f"subflow of execution {middle.split()[0]}" in cli("show", leaf_id).stdout
