"""Leaf task executors against real processes, a real HTTP server and real functions."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pausepoint.config import Settings
from pausepoint.errors import TaskError
from pausepoint.tasks import LeafContext, run_leaf, shutdown_executors
from pausepoint.testing import assert_eventually
from tests.integration import tasks_functions
from tests.integration.tasks_http_server import BIG_BODY_BYTES, RunningServer, serve

FUNCTIONS = "tests.integration.tasks_functions"


class RecordingLog:
    """A LeafContext.log that keeps every line and lets a test await one."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        self._waiters: list[tuple[str, asyncio.Future[str]]] = []

    def __call__(self, level: str, message: str) -> None:
        self.lines.append((level, message))
        for prefix, future in self._waiters:
            if not future.done() and message.startswith(prefix):
                future.set_result(message)

    async def wait_for_line(self, prefix: str, within: float = 10.0) -> str:
        for _, message in self.lines:
            if message.startswith(prefix):
                return message
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiters.append((prefix, future))
        return await asyncio.wait_for(future, within)

    def messages(self, level: str) -> list[str]:
        return [message for line_level, message in self.lines if line_level == level]


def make_ctx(log: RecordingLog | None = None, **settings: Any) -> LeafContext:
    return LeafContext(
        execution_id="exec-1",
        task_run_id="run-1",
        attempt=2,
        settings=Settings(db="sqlite://", **settings),
        log=log or RecordingLog(),
    )


def process_gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie awaiting its reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    state = stat.rsplit(")", 1)[1].split()[0]
    return state in ("Z", "X")


def file_text(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


# ---------------------------------------------------------------- log, return, outputs


async def test_log_records_each_message_at_its_level() -> None:
    log = RecordingLog()
    outputs = await run_leaf(
        "log", {"message": ["first", "second"], "level": "WARN"}, make_ctx(log)
    )
    assert outputs == {}
    assert log.lines == [("WARN", "first"), ("WARN", "second")]


async def test_log_defaults_to_info_and_rejects_unknown_levels() -> None:
    log = RecordingLog()
    await run_leaf("log", {"message": "hello"}, make_ctx(log))
    assert log.lines == [("INFO", "hello")]
    with pytest.raises(TaskError, match="'level' must be one of"):
        await run_leaf("log", {"message": "x", "level": "LOUD"}, make_ctx())


async def test_return_outputs_its_format_or_none() -> None:
    assert await run_leaf("return", {"format": "done 42"}, make_ctx()) == {"value": "done 42"}
    assert await run_leaf("return", {}, make_ctx()) == {"value": None}


async def test_outputs_task_publishes_values_under_values() -> None:
    spec = {"id": "last", "type": "outputs", "values": {"asked": "yes", "n": 3}}
    assert await run_leaf("outputs", spec, make_ctx()) == {"values": {"asked": "yes", "n": 3}}


async def test_unknown_task_type_fails_with_the_known_types() -> None:
    with pytest.raises(
        TaskError, match=r"unknown leaf task type 'pause'; known types: .*http.*log, "
    ):
        await run_leaf("pause", {}, make_ctx())


# ---------------------------------------------------------------- python


async def test_python_sync_function_returns_its_dict_and_runs_off_the_loop() -> None:
    outputs = await run_leaf(
        "python", {"function": f"{FUNCTIONS}:add", "kwargs": {"a": 2, "b": 3}}, make_ctx()
    )
    assert outputs == {"sum": 5}
    name = await run_leaf("python", {"function": f"{FUNCTIONS}:thread_name"}, make_ctx())
    assert name["value"].startswith("pausepoint-task")


async def test_python_async_function_is_awaited() -> None:
    spec = {"function": f"{FUNCTIONS}:greet", "kwargs": {"name": "ada"}}
    assert await run_leaf("python", spec, make_ctx()) == {"greeting": "hello ada"}


async def test_python_return_values_become_outputs() -> None:
    ctx = make_ctx()
    assert await run_leaf("python", {"function": f"{FUNCTIONS}:scalar"}, ctx) == {"value": 42}
    assert await run_leaf("python", {"function": f"{FUNCTIONS}:nothing"}, ctx) == {}
    assert await run_leaf("python", {"function": f"{FUNCTIONS}:pair"}, ctx) == {"value": [1, "two"]}
    spec = {"function": f"{FUNCTIONS}:Namespace.double", "kwargs": {"x": 21}}
    assert await run_leaf("python", spec, ctx) == {"value": 42}


async def test_python_function_declaring_pausepoint_receives_the_context() -> None:
    spec = {"function": f"{FUNCTIONS}:identify", "kwargs": {"label": "pay"}}
    assert await run_leaf("python", spec, make_ctx()) == {
        "label": "pay",
        "execution_id": "exec-1",
        "task_run_id": "run-1",
        "attempt": 2,
    }


async def test_python_kwargs_that_do_not_match_the_signature_fail_before_the_call() -> None:
    spec = {"function": f"{FUNCTIONS}:add", "kwargs": {"a": 1, "c": 2}}
    # The signature is worked out once per function and each set of names checked once:
    # the second call is refused from what the first learned, the third binds.
    for _ in range(2):
        with pytest.raises(TaskError, match=r"kwargs do not match its parameters \(a, b\): .*'b'"):
            await run_leaf("python", spec, make_ctx())
    spec = {"function": f"{FUNCTIONS}:add", "kwargs": {"a": 1, "b": 2}}
    assert await run_leaf("python", spec, make_ctx()) == {"sum": 3}


async def test_python_callable_objects_are_called_whether_hashable_or_not() -> None:
    # A callable instance with __eq__ and no __hash__ cannot key a cache: it is checked
    # every time instead.
    for name in ("unhashable_adder", "hashable_adder"):
        spec = {"function": f"{FUNCTIONS}:{name}", "kwargs": {"a": 2, "b": 3}}
        assert await run_leaf("python", spec, make_ctx()) == {"value": 5}
        with pytest.raises(TaskError, match="kwargs do not match"):
            await run_leaf("python", {**spec, "kwargs": {"a": 2}}, make_ctx())


async def test_python_exception_names_function_type_message_and_user_line() -> None:
    spec = {"function": f"{FUNCTIONS}:fail", "kwargs": {"reason": "card\ndeclined"}}
    with pytest.raises(TaskError) as caught:
        await run_leaf("python", spec, make_ctx())
    line = tasks_functions.fail.__code__.co_firstlineno + 1
    message = str(caught.value)
    assert message.startswith(f"{FUNCTIONS}:fail raised ValueError: card declined (at ")
    assert message.endswith(f"tasks_functions.py:{line})")
    assert "\n" not in message


async def test_python_async_exception_is_reported_the_same_way() -> None:
    with pytest.raises(TaskError, match=r"fail_async raised KeyError: 'missing' \(at .*py:\d+\)"):
        await run_leaf("python", {"function": f"{FUNCTIONS}:fail_async"}, make_ctx())


async def test_python_task_error_from_user_code_keeps_its_message() -> None:
    with pytest.raises(TaskError) as caught:
        await run_leaf("python", {"function": f"{FUNCTIONS}:fail_with_task_error"}, make_ctx())
    assert str(caught.value) == "the invoice was already paid"


async def test_python_sys_exit_fails_the_task_instead_of_the_process() -> None:
    with pytest.raises(TaskError, match=r"exit_process raised SystemExit: 3"):
        await run_leaf("python", {"function": f"{FUNCTIONS}:exit_process"}, make_ctx())


async def test_python_non_serialisable_result_names_the_function() -> None:
    with pytest.raises(
        TaskError, match=r"not_serialisable returned a value that is not JSON-serialisable"
    ):
        await run_leaf("python", {"function": f"{FUNCTIONS}:not_serialisable"}, make_ctx())


async def test_python_import_errors_name_the_module_and_the_paths_searched(
    tmp_path: Path,
) -> None:
    # Allowed by name but nowhere to be found: the error says where it was looked for.
    ctx = make_ctx(python_paths=(str(tmp_path),), python_modules=("tests", "no_such_module_pp"))
    with pytest.raises(TaskError) as caught:
        await run_leaf("python", {"function": "no_such_module_pp:run"}, ctx)
    assert "module 'no_such_module_pp' not found" in str(caught.value)
    assert str(tmp_path) in str(caught.value)
    with pytest.raises(TaskError, match="has no attribute 'missing'"):
        await run_leaf("python", {"function": f"{FUNCTIONS}:missing"}, ctx)
    with pytest.raises(TaskError, match="'NOT_CALLABLE' is a int, not a function"):
        await run_leaf("python", {"function": f"{FUNCTIONS}:NOT_CALLABLE"}, ctx)


async def test_python_functions_are_found_in_python_paths(tmp_path: Path) -> None:
    module = f"tasks_pp_{uuid.uuid4().hex}"
    (tmp_path / f"{module}.py").write_text("def answer(question):\n    return {'a': 42}\n")
    ctx = make_ctx(python_paths=(str(tmp_path),))
    spec = {"function": f"{module}:answer", "kwargs": {"question": "?"}}
    assert await run_leaf("python", spec, ctx) == {"a": 42}


async def test_python_async_function_is_cancelled_at_its_await() -> None:
    token = uuid.uuid4().hex
    gate = tasks_functions.ASYNC_GATES[token] = tasks_functions.AsyncGate()
    spec = {"function": f"{FUNCTIONS}:wait_until_cancelled", "kwargs": {"token": token}}
    task = asyncio.create_task(run_leaf("python", spec, make_ctx()))
    await asyncio.wait_for(gate.started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert gate.cleaned_up, "the function's finally block should run on cancellation"


async def test_python_sync_function_cancel_abandons_the_await_but_the_thread_finishes() -> None:
    token = uuid.uuid4().hex
    gate = tasks_functions.SYNC_GATES[token] = tasks_functions.SyncGate()
    spec = {"function": f"{FUNCTIONS}:block_until_released", "kwargs": {"token": token}}
    task = asyncio.create_task(run_leaf("python", spec, make_ctx()))
    assert await asyncio.to_thread(gate.started.wait, 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert not gate.finished.is_set(), "a thread cannot be killed: it is still running"
    gate.release.set()
    assert await asyncio.to_thread(gate.finished.wait, 10)


async def test_python_thread_pool_is_bounded_by_max_task_threads() -> None:
    await shutdown_executors()  # the next call creates the pool with these settings
    try:
        first, second = tasks_functions.SyncGate(), tasks_functions.SyncGate()
        tokens = [uuid.uuid4().hex, uuid.uuid4().hex]
        tasks_functions.SYNC_GATES.update(zip(tokens, (first, second), strict=True))
        ctx = make_ctx(max_task_threads=1)
        runs = [
            asyncio.create_task(
                run_leaf(
                    "python",
                    {"function": f"{FUNCTIONS}:block_until_released", "kwargs": {"token": t}},
                    ctx,
                )
            )
            for t in tokens
        ]
        assert await asyncio.to_thread(first.started.wait, 10)
        assert not await asyncio.to_thread(second.started.wait, 0.2), "only one thread"
        first.release.set()
        assert await asyncio.to_thread(second.started.wait, 10)
        second.release.set()
        assert [await run for run in runs] == [{"value": t} for t in tokens]
    finally:
        await shutdown_executors()


async def test_python_tasks_run_again_after_shutdown_executors() -> None:
    await shutdown_executors()
    spec = {"function": f"{FUNCTIONS}:add", "kwargs": {"a": 1, "b": 1}}
    assert await run_leaf("python", spec, make_ctx()) == {"sum": 2}


# ---------------------------------------------------------------- shell


def shell_ctx(log: RecordingLog, grace: float = 0.3) -> LeafContext:
    return make_ctx(log, shell_enabled=True, cancel_grace_period=grace)


async def test_shell_is_refused_unless_enabled() -> None:
    with pytest.raises(TaskError) as caught:
        await run_leaf("shell", {"commands": ["echo hi"]}, make_ctx())
    assert str(caught.value) == (
        "shell tasks are disabled; enable them with PAUSEPOINT_SHELL_ENABLED=true "
        "or Settings(shell_enabled=True)"
    )


async def test_shell_streams_output_and_parses_kestra_outputs() -> None:
    log = RecordingLog()
    spec = {
        "commands": [
            "echo hello; echo oops >&2",
            """echo '::{"outputs":{"answer":42,"name":"ada"}}::'; echo bye""",
        ]
    }
    outputs = await run_leaf("shell", spec, shell_ctx(log))
    assert outputs["exitCode"] == 0
    assert outputs["vars"] == {"answer": 42, "name": "ada"}
    assert outputs["stdout"].startswith("hello\n")
    assert outputs["stdout"].endswith("bye\n")
    assert log.messages("INFO") == ["hello", "bye"]
    assert log.messages("WARN") == ["oops"]


async def test_shell_env_working_directory_interpreter_and_task_identity(tmp_path: Path) -> None:
    spec = {
        "commands": [
            "print(os.environ['GREETING'], os.getcwd(), os.environ['PAUSEPOINT_TASK_RUN_ID'])"
        ],
        "interpreter": ["python3", "-c", "import os, sys; exec(sys.argv[1])"],
        "env": {"GREETING": "hi"},
        "workingDirectory": str(tmp_path),
    }
    outputs = await run_leaf("shell", spec, shell_ctx(RecordingLog()))
    assert outputs["stdout"] == f"hi {tmp_path} run-1\n"


async def test_shell_keeps_only_the_tail_of_stdout() -> None:
    spec = {"commands": ["head -c 200000 /dev/zero | tr '\\0' 'a'; echo; echo END"]}
    outputs = await run_leaf("shell", spec, shell_ctx(RecordingLog()))
    assert len(outputs["stdout"].encode()) == 64 * 1024
    assert outputs["stdout"].endswith("a\nEND\n")


async def test_shell_failure_names_the_command_exit_code_and_last_stderr_line() -> None:
    log = RecordingLog()
    spec = {"commands": ["true", "echo first >&2; echo 'disk full' >&2; exit 3", "echo never"]}
    with pytest.raises(TaskError) as caught:
        await run_leaf("shell", spec, shell_ctx(log))
    assert str(caught.value) == "shell command 2 of 3 exited with code 3: disk full"
    assert "never" not in log.messages("INFO")


async def test_shell_missing_interpreter_or_directory_fails_clearly(tmp_path: Path) -> None:
    ctx = shell_ctx(RecordingLog())
    with pytest.raises(TaskError, match="cannot start interpreter '/no/such/shell'"):
        await run_leaf("shell", {"commands": ["x"], "interpreter": ["/no/such/shell"]}, ctx)
    missing = str(tmp_path / "absent")
    with pytest.raises(TaskError, match="cannot use workingDirectory"):
        await run_leaf("shell", {"commands": ["true"], "workingDirectory": missing}, ctx)


async def _start_and_cancel(
    script: str, log: RecordingLog, ctx: LeafContext
) -> tuple[float, list[int]]:
    """Run ``script`` until it prints ``ready <pid>...``, cancel it, return (seconds, pids)."""
    task = asyncio.create_task(run_leaf("shell", {"commands": [script]}, ctx))
    ready = await log.wait_for_line("ready ")
    pids = [int(pid) for pid in ready.split()[1:]]
    assert all(not process_gone(pid) for pid in pids)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return time.monotonic() - started, pids


async def test_shell_cancel_sends_sigterm_to_the_process_group(tmp_path: Path) -> None:
    mark = tmp_path / "terminated"
    script = (
        f"trap 'echo cleaned-up > {mark}; exit 0' TERM\nsleep 1000 &\necho \"ready $$ $!\"\nwait\n"
    )
    log = RecordingLog()
    elapsed, pids = await _start_and_cancel(script, log, shell_ctx(log, grace=10.0))
    assert elapsed < 5.0, "the script exits on SIGTERM; no need to wait for the grace period"
    assert file_text(mark) == "cleaned-up\n"
    await assert_eventually(lambda: all(process_gone(pid) for pid in pids), what=f"{pids} to exit")


async def test_shell_cancel_kills_a_group_that_ignores_sigterm_after_the_grace_period() -> None:
    script = "trap '' TERM\nsleep 1000 &\necho \"ready $$ $!\"\nwait\n"
    log = RecordingLog()
    elapsed, pids = await _start_and_cancel(script, log, shell_ctx(log, grace=0.3))
    assert 0.3 <= elapsed < 5.0
    assert any("ignored SIGTERM" in message for message in log.messages("WARN"))
    # The shell is reaped before cancellation propagates; its orphaned sleep may
    # briefly be a zombie awaiting init, which process_gone counts as exited.
    await assert_eventually(lambda: all(process_gone(pid) for pid in pids), what=f"{pids} to exit")


async def test_shell_background_processes_do_not_outlive_the_command() -> None:
    log = RecordingLog()
    outputs = await run_leaf("shell", {"commands": ["sleep 1000 & echo $!"]}, shell_ctx(log))
    pid = int(outputs["stdout"])
    await assert_eventually(lambda: process_gone(pid), what=f"background sleep {pid} to exit")


# ---------------------------------------------------------------- http


@pytest.fixture
def server() -> Iterator[RunningServer]:
    with serve() as running:
        yield running


async def test_http_get_json_parses_the_body(server: RunningServer) -> None:
    outputs = await run_leaf("http", {"uri": f"{server.base_url}/json"}, make_ctx())
    assert outputs["code"] == 200
    assert outputs["body"] == {"hello": "world", "items": [1, 2]}
    assert outputs["headers"]["x-custom-header"] == "Yes"
    assert outputs["headers"]["content-type"] == "application/json"
    assert outputs["uri"] == f"{server.base_url}/json"


async def test_http_text_and_json_suffix_content_types(server: RunningServer) -> None:
    text = await run_leaf("http", {"uri": f"{server.base_url}/text"}, make_ctx())
    assert text["body"] == "plain text ✓"
    problem = await run_leaf("http", {"uri": f"{server.base_url}/problem+json"}, make_ctx())
    assert problem["body"] == {"title": "fine"}


async def test_http_invalid_json_is_kept_as_text_with_a_warning(server: RunningServer) -> None:
    log = RecordingLog()
    outputs = await run_leaf("http", {"uri": f"{server.base_url}/bad-json"}, make_ctx(log))
    assert outputs["body"] == "this is not json"
    assert any("not valid JSON" in message for message in log.messages("WARN"))


async def test_http_dict_body_is_sent_as_json(server: RunningServer) -> None:
    spec = {
        "uri": f"{server.base_url}/echo",
        "method": "post",
        "headers": {"Authorization": "Bearer t"},
        "body": {"amount": 3},
    }
    echoed = (await run_leaf("http", spec, make_ctx()))["body"]
    assert echoed["method"] == "POST"
    assert echoed["content_type"] == "application/json"
    assert echoed["authorization"] == "Bearer t"
    assert echoed["body"] == '{"amount":3}'


async def test_http_string_body_uses_content_type(server: RunningServer) -> None:
    spec = {
        "uri": f"{server.base_url}/echo",
        "method": "PUT",
        "body": "name=ada",
        "contentType": "text/plain",
    }
    echoed = (await run_leaf("http", spec, make_ctx()))["body"]
    assert (echoed["method"], echoed["content_type"], echoed["body"]) == (
        "PUT",
        "text/plain",
        "name=ada",
    )


async def test_http_form_content_type_encodes_a_dict_body(server: RunningServer) -> None:
    spec = {
        "uri": f"{server.base_url}/echo",
        "method": "POST",
        "body": {"name": "ada", "n": 1},
        "contentType": "application/x-www-form-urlencoded",
    }
    echoed = (await run_leaf("http", spec, make_ctx()))["body"]
    assert echoed["body"] == "name=ada&n=1"


async def test_http_error_status_fails_with_status_method_uri_and_body(
    server: RunningServer,
) -> None:
    uri = f"{server.base_url}/status/503"
    with pytest.raises(TaskError) as caught:
        await run_leaf("http", {"uri": uri, "method": "POST"}, make_ctx())
    message = str(caught.value)
    assert message.startswith(f"HTTP 503 from POST {uri}: service unavailable, please retry xxx")
    assert len(message) < len(uri) + 250
    assert "\n" not in message


async def test_http_allow_failed_returns_the_error_response(server: RunningServer) -> None:
    spec = {"uri": f"{server.base_url}/status/404", "allowFailed": "true"}
    outputs = await run_leaf("http", spec, make_ctx())
    assert outputs["code"] == 404
    assert outputs["body"].startswith("service unavailable")


async def test_http_follows_redirects_and_reports_the_final_uri(server: RunningServer) -> None:
    outputs = await run_leaf("http", {"uri": f"{server.base_url}/redirect"}, make_ctx())
    assert outputs["uri"] == f"{server.base_url}/json"
    assert outputs["body"]["hello"] == "world"


async def test_http_large_body_is_truncated_with_a_marker(server: RunningServer) -> None:
    log = RecordingLog()
    outputs = await run_leaf("http", {"uri": f"{server.base_url}/big"}, make_ctx(log))
    body = outputs["body"]
    assert BIG_BODY_BYTES > 10 * 1024 * 1024
    assert (
        body
        == "a" * (10 * 1024 * 1024) + "\n[pausepoint: response body truncated at 10485760 bytes]"
    )
    assert log.messages("WARN")


async def test_http_connection_refused_fails_with_the_reason() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uri = f"http://127.0.0.1:{port}/x"
    with pytest.raises(
        TaskError, match=rf"GET {uri} failed: ConnectError: .*\(Connection refused\)$"
    ):
        await run_leaf("http", {"uri": uri}, make_ctx())


async def test_http_rejects_a_non_http_uri() -> None:
    with pytest.raises(TaskError, match="use http:// or https://"):
        await run_leaf("http", {"uri": "ftp://example.com/file"}, make_ctx())


async def test_http_cancel_aborts_the_request(server: RunningServer) -> None:
    task = asyncio.create_task(run_leaf("http", {"uri": f"{server.base_url}/slow"}, make_ctx()))
    assert await asyncio.to_thread(server.state.slow_started.wait, 10)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 2.0
    assert await asyncio.to_thread(server.state.slow_client_disconnected.wait, 10), (
        "the server should see the client close the connection"
    )
