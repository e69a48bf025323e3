"""pausepoint without the ``otel`` extra: it imports, serves and runs with tracing off.

FastAPI itself depends on ``opentelemetry-api``; what the extra adds, and what
these tests take away, is the SDK and the OTLP exporter.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pausepoint.config import Settings
from pausepoint.tracing import OFF, tracing_for

SRC = Path(__file__).resolve().parents[2] / "src"


def test_tracing_is_off_unless_settings_ask_for_it() -> None:
    tracing = tracing_for(Settings())
    assert tracing is OFF and not tracing.enabled
    with tracing.span("anything", traceparent=None):
        pass


def test_pausepoint_runs_a_flow_without_the_opentelemetry_sdk(tmp_path: Path) -> None:
    # ``sys.modules[name] = None`` makes every import of the package fail, as if it
    # were not installed; the flow's python task goes through run_leaf.
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        sys.modules["opentelemetry.sdk"] = None
        sys.modules["opentelemetry.exporter"] = None
        from pausepoint import Engine
        from pausepoint.api.app import create_app
        from pausepoint.config import Settings

        FLOW = '''
        id: plain
        namespace: no.otel
        tasks:
          - id: sleep
            type: python
            function: asyncio:sleep
            kwargs:
              delay: 0
        '''

        async def main():
            settings = Settings(
                db="sqlite:///{tmp_path / "runs.db"}", gc_freeze=False, python_modules=("asyncio",)
            )
            async with Engine(settings) as engine:
                create_app(engine)
                await engine.put_flow(FLOW)
                started = await engine.start_execution("no.otel", "plain")
                ended = await engine.wait(started.id, timeout=20)
                print(ended.state)
            try:
                await Engine(Settings(db=settings.db, otel_traces=True)).start()
            except ImportError as error:
                print(error)

        asyncio.run(main())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "COMPLETED", result.stdout
    assert "pausepoint[otel]" in lines[1]


@pytest.mark.parametrize("flag", ["true", "1"])
def test_the_setting_reads_from_the_environment(monkeypatch: pytest.MonkeyPatch, flag: str) -> None:
    monkeypatch.setenv("PAUSEPOINT_OTEL_TRACES", flag)
    assert Settings().otel_traces
