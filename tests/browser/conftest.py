"""The web UI in real Chromium against a real ``pausepoint server`` on a loopback port.

One server for the whole package, started as users start it (``python -m pausepoint server
--flows examples``), so the sign-in link it prints is the one tested. Debian's
``/usr/bin/chromium`` is driven by Playwright (its own browser download cannot
work here). Without that browser the suite is skipped, except under ``CI``,
where a missing browser is a failure.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from pausepoint.testing import assert_eventually

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
CHROMIUM = Path(os.environ.get("PAUSEPOINT_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
README_SCREENSHOTS = REPO / "docs" / "screenshots"
START_TIMEOUT_SECONDS = 60.0

# Runs long enough to pause, inject into and terminate: a checkpoint every second.
SLOW_FLOW = """
id: slow_steps
namespace: ui.tests
labels:
  suite: browser
tasks:
""" + "".join(
    f"""
  - id: step_{n}
    type: shell
    commands: ["sleep 1"]
"""
    for n in range(1, 31)
)

# A Pause task taking one input of every type: one widget each in the resume form.
EVERY_WIDGET_FLOW = """
id: every_widget
namespace: ui.tests
tasks:
  - id: review
    type: pause
    onResume:
      - id: approved
        type: BOOLEAN
        defaults: false
      - id: seats
        type: INT
        min: 1
        max: 10
        defaults: 2
      - id: ratio
        type: FLOAT
        required: false
      - id: day
        type: DATE
        required: false
      - id: meeting
        type: DATETIME
        required: false
      - id: at
        type: TIME
        required: false
      - id: within
        type: DURATION
        required: false
      - id: tier
        type: SELECT
        values: [bronze, silver, gold]
        defaults: silver
      - id: regions
        type: MULTISELECT
        values: [eu, us, apac]
        defaults: [eu]
      - id: settings
        type: JSON
        defaults: '{"retries": 3}'
      - id: contact
        type: EMAIL
        required: false
      - id: link
        type: URI
        required: false
      - id: token
        type: SECRET
        required: false
      - id: tags
        type: ARRAY
        itemType: STRING
        required: false
      - id: note
        type: STRING
        validator: "[A-Z].*"
        description: Starts with a capital letter
        required: false
"""

if not CHROMIUM.exists():
    reason = f"the browser tests need Chromium at {CHROMIUM} (apt-get install chromium)"
    if os.environ.get("CI"):
        raise RuntimeError(f"{reason}; CI is set, so this is a failure, not a skip")
    pytest.skip(reason, allow_module_level=True)

from playwright.sync_api import (  # noqa: E402
    Browser,
    BrowserContext,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

# Conditions, not sleeps: each waits up to this long (a loaded CI machine is slow).
expect.set_options(timeout=15_000)


@dataclass
class Server:
    base_url: str
    sign_in_link: str
    keys: dict[str, str]  # role -> API key (org "default")

    def api(self, role: str = "admin") -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.base_url}/api/v1", headers={"X-API-Key": self.keys[role]}, timeout=30
        )

    def start(self, namespace: str, flow_id: str, **inputs: Any) -> str:
        with self.api() as client:
            reply = client.post(
                "/executions", json={"namespace": namespace, "flow_id": flow_id, "inputs": inputs}
            )
            reply.raise_for_status()
            execution_id: str = reply.json()["id"]
            return execution_id

    def state(self, execution_id: str) -> str:
        with self.api() as client:
            state: str = client.get(f"/executions/{execution_id}/state").json()["state"]
            return state


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_output(log: Path, process: subprocess.Popen[bytes], marker: str) -> str:
    def printed() -> str:
        text = log.read_text(errors="replace")
        if marker not in text and process.poll() is not None:
            raise RuntimeError(f"pausepoint server exited with {process.returncode}:\n{text}")
        assert marker in text, f"pausepoint server did not print {marker!r}:\n{text}"
        return text

    # The fixtures here are synchronous: the one polling helper runs in a loop of its own.
    return asyncio.run(assert_eventually(printed, timeout=START_TIMEOUT_SECONDS, interval=0.05))


def create_key(database: Path, role: str) -> str:
    command = [sys.executable, "-m", "pausepoint", "--db", str(database), "keys", "create"]
    created = subprocess.run(
        [*command, "--role", role, "--name", f"browser tests {role}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return created.stdout.strip().splitlines()[-1].strip()


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("ui-server")
    database = workdir / "pausepoint.db"
    log = workdir / "server.log"
    port = free_port()
    env = {
        **os.environ,
        "PAUSEPOINT_POLL_INTERVAL": "0.05",
        # The support agent example's tools (examples/support_tools.py).
        "PAUSEPOINT_PYTHON_PATHS": json.dumps([str(EXAMPLES)]),
        "PAUSEPOINT_CANCEL_GRACE_PERIOD": "0.5",
        "COLUMNS": "200",
    }
    command = [sys.executable, "-m", "pausepoint", "--db", str(database), "server"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--flows", str(EXAMPLES)]
    command += ["--enable-shell"]
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    try:
        text = wait_for_output(log, process, "pausepoint serving")
        link = re.search(r"sign in: (\S+)", text)
        assert link, f"no sign-in link in the server's output:\n{text}"
        admin_key = link[1].partition("#key=")[2]
        keys = {"admin": admin_key}
        for role in ("operator", "viewer"):
            keys[role] = create_key(database, role)
        running = Server(f"http://127.0.0.1:{port}", link[1], keys)
        with running.api() as client:
            for flow_id, source in (("slow_steps", SLOW_FLOW), ("every_widget", EVERY_WIDGET_FLOW)):
                client.put(
                    f"/flows/ui.tests/{flow_id}",
                    content=source,
                    headers={"Content-Type": "application/x-yaml"},
                ).raise_for_status()
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# Package scope, not session: while Playwright's sync API is open its event loop counts
# as running in this thread, so the async tests collected after this package would fail.
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(executable_path=str(CHROMIUM))
    yield launched
    launched.close()


@pytest.fixture
def new_context(browser: Browser) -> Iterator[Callable[..., BrowserContext]]:
    """Open isolated browser contexts (separate sessionStorage: separate users)."""
    opened: list[BrowserContext] = []
    script_errors: list[str] = []

    def open_context(**options: Any) -> BrowserContext:
        options.setdefault("viewport", {"width": 1280, "height": 860})
        context = browser.new_context(**options)
        context.set_default_timeout(15_000)
        context.on("weberror", lambda error: script_errors.append(str(error.error)))
        opened.append(context)
        return context

    yield open_context
    for context in opened:
        context.close()
    assert not script_errors, f"uncaught errors in the page: {script_errors}"


@pytest.fixture
def signed_in(server: Server, new_context: Callable[..., BrowserContext]) -> Callable[..., Page]:
    """A page signed in with the key of ``role`` (through the form), at ``#/executions``."""

    def sign_in(role: str = "admin", **options: Any) -> Page:
        page = new_context(**options).new_page()
        page.goto(server.base_url + "/")
        page.get_by_label("API key").fill(server.keys[role])
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#identity-text")).to_have_text(f"default · {role}")
        return page

    return sign_in


def screenshot(page: Page, name: str) -> None:
    """Save under test-artifacts/; with PAUSEPOINT_UPDATE_SCREENSHOTS=1 also for the README."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    if os.environ.get("PAUSEPOINT_UPDATE_SCREENSHOTS"):
        README_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, README_SCREENSHOTS / path.name)
