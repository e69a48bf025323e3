"""Schemathesis over every operation of /openapi.json against a real server process.

No generated request may get a 5xx, a status code the schema does not document,
or a body that does not match the documented schema. Two runs against one server:

- the schema's examples, coverage and fuzzing, every operation on its own;
- stateful scenarios that follow the OpenAPI links: a started execution's id
  into every route about one execution (state, audit, events, pause, resume,
  cancel, terminate, inject, the seed-compatible routes), a listed or stored
  flow into its reads and into starts. So that starts succeed often enough to
  have something to follow, this run's start bodies carry no inputs (a
  schemathesis config file) and it deletes nothing; everything else is generated.

The number of examples per operation is bounded (``PAUSEPOINT_SCHEMATHESIS_EXAMPLES``,
default 20), and so are the stateful scenarios (``PAUSEPOINT_SCHEMATHESIS_SCENARIOS``,
default 60, at most 12 steps each), so the suite stays quick; `make soak` runs more.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from tests.api.conftest import free_port
from tests.api.test_server_crash import KEY, server_process, wait_healthy
from tests.conftest import EXAMPLES

# A fuzzer with a bounded quick mode (`make soak` runs it at full length).
pytestmark = pytest.mark.chaos

EXAMPLES_PER_OPERATION = os.environ.get("PAUSEPOINT_SCHEMATHESIS_EXAMPLES", "20")
SCENARIOS = int(os.environ.get("PAUSEPOINT_SCHEMATHESIS_SCENARIOS", "60"))
CHECKS = "not_a_server_error,status_code_conformance,response_schema_conformance"
# Routes about one execution that the scenarios must reach through the links.
MUST_REACH = (
    "GET /api/v1/executions/{execution_id}/state",
    "POST /api/v1/executions/{execution_id}/pause",
    "POST /api/v1/executions/{execution_id}/cancel",
)


def schemathesis_cli() -> str:
    found = shutil.which("st", path=str(Path(sys.executable).parent)) or shutil.which("st")
    assert found, "the schemathesis CLI (`st`) is not installed: pip install -e '.[test]'"
    return found


# A 5xx some route documents as its answer, by design: Shannon's task submission on a
# server with no flow configured for it (501, saying how to configure one).
DOCUMENTED_5XX = (
    "[[operations]]\n"
    'include-path = "/api/v1/tasks"\n'
    'include-method = "POST"\n'
    "[operations.checks.not_a_server_error]\n"
    'expected-statuses = ["2xx", "3xx", "4xx", "501"]\n\n'
)


def single_config(directory: Path) -> Path:
    """A schemathesis.toml that only knows the documented 5xx answers."""
    path = directory / "schemathesis-single.toml"
    path.write_text(DOCUMENTED_5XX)
    return path


def stateful_config(directory: Path) -> Path:
    """A schemathesis.toml under which the linked starts take no inputs (so they succeed)."""
    path = directory / "schemathesis.toml"
    path.write_text(
        DOCUMENTED_5XX + f"[phases.stateful]\nmax-steps = 12\n\n"
        f"[phases.stateful.generation]\nmax-examples = {SCENARIOS}\n\n"
        "[[operations]]\n"
        'include-path = "/api/v1/executions"\n'
        'include-method = "POST"\n'
        "[operations.parameters]\n"
        '"body.inputs" = {}\n'
        '"body.revision" = 1\n'
    )
    return path


async def restore_flows(base_url: str, key: str) -> None:
    """Store the example flows again (the first run deletes some of them, as it should)."""
    async with httpx.AsyncClient(base_url=base_url, headers={"X-API-Key": key}) as http:
        for path in sorted(EXAMPLES.glob("*.yaml")):
            flow = yaml.safe_load(path.read_text())
            reply = await http.put(
                f"/api/v1/flows/{flow['namespace']}/{flow['id']}",
                content=path.read_bytes(),
                headers={"Content-Type": "application/x-yaml"},
            )
            assert reply.status_code in (200, 201), reply.text


async def schemathesis(base_url: str, key: str, *options: str, config: Path | None = None) -> str:
    """Run ``st run`` against the server; its report (the test fails if it did)."""
    process = await asyncio.create_subprocess_exec(
        schemathesis_cli(),
        *(("--config-file", str(config)) if config else ()),
        "run",
        f"{base_url}/openapi.json",
        "--header",
        f"X-API-Key: {key}",
        "--checks",
        CHECKS,
        # The organization's live feed never ends by design (tested in test_events), nor
        # does Shannon's stream of a task still running (tested in test_shannon_sdk), nor
        # Kubiya's (tested in test_kubiya).
        "--exclude-path",
        "/api/v1/events",
        "--exclude-path",
        "/api/v1/stream/sse",
        "--exclude-path",
        "/api/v1/executions/{execution_id}/stream",
        "--request-timeout",
        "10",
        "--seed",
        "20261124",
        *options,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_TELEMETRY": "false"},
    )
    output, _ = await process.communicate()
    report = output.decode(errors="replace")
    assert process.returncode == 0, report[-6000:]
    assert "Tested:" in report, report[-2000:]
    return report


async def test_generated_requests_never_get_5xx_or_off_schema_replies(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    shutil.copytree(EXAMPLES, flows)
    async with server_process(tmp_path / "st.db", flows, free_port()) as server:
        key = (await server.read_until(KEY)).group(0)
        await wait_healthy(server.base_url)
        single = await schemathesis(
            server.base_url,
            key,
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            EXAMPLES_PER_OPERATION,
            config=single_config(tmp_path),
        )
        assert "Fuzzing" in single, single[-2000:]
        await restore_flows(server.base_url, key)
        stateful = await schemathesis(
            server.base_url,
            key,
            "--phases",
            "stateful",
            # Deleting the flows the scenarios start would leave them nothing to follow.
            "--exclude-method",
            "DELETE",
            config=stateful_config(tmp_path),
        )
    covered = re.search(r"API Links:\s+(\d+) covered", stateful)
    assert covered, stateful[-3000:]
    assert int(covered[1]) >= 10, f"the scenarios followed few links:\n{stateful[-4000:]}"
    unreached = stateful.partition("stateful testing never reached them")[2].partition("💡")[0]
    for route in MUST_REACH:
        assert route not in unreached, f"{route} never reached:\n{stateful[-4000:]}"
