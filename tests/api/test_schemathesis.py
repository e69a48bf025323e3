"""Schemathesis over every operation of /openapi.json against a real server process.

No generated request may get a 5xx, a status code the schema does not document,
or a body that does not match the documented schema. The number of examples per
operation is bounded (``PAUSEPOINT_SCHEMATHESIS_EXAMPLES``, default 20) so the
suite stays quick; `make soak` runs more.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path

from tests.api.test_server_crash import KEY, free_port, server_process, wait_healthy
from tests.conftest import EXAMPLES

EXAMPLES_PER_OPERATION = os.environ.get("PAUSEPOINT_SCHEMATHESIS_EXAMPLES", "20")
CHECKS = "not_a_server_error,status_code_conformance,response_schema_conformance"


def schemathesis_cli() -> str:
    found = shutil.which("st", path=str(Path(sys.executable).parent)) or shutil.which("st")
    assert found, "the schemathesis CLI (`st`) is not installed: pip install -e '.[test]'"
    return found


async def test_generated_requests_never_get_5xx_or_off_schema_replies(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    shutil.copytree(EXAMPLES, flows)
    async with server_process(tmp_path / "st.db", flows, free_port()) as server:
        key = (await server.read_until(KEY)).group(0)
        await wait_healthy(server.base_url)
        process = await asyncio.create_subprocess_exec(
            schemathesis_cli(),
            "run",
            f"{server.base_url}/openapi.json",
            "--header",
            f"X-API-Key: {key}",
            "--max-examples",
            EXAMPLES_PER_OPERATION,
            "--phases",
            "coverage,fuzzing",
            "--checks",
            CHECKS,
            # The organization's live feed never ends by design (tested in test_events).
            "--exclude-path",
            "/api/v1/events",
            "--request-timeout",
            "10",
            "--seed",
            "20261124",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_TELEMETRY": "false"},
        )
        output, _ = await process.communicate()
    report = output.decode(errors="replace")
    assert process.returncode == 0, report[-6000:]
    assert "Tested:" in report, report[-2000:]
