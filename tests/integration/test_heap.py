"""The engine keeps the cyclic garbage collector off the objects alive when it starts."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def test_the_first_engine_of_a_process_freezes_the_heap_once(tmp_path: Path) -> None:
    # In a process of its own: the test process has started many engines already.
    script = textwrap.dedent(
        f"""
        import asyncio, gc
        from pausepoint import Engine, Settings
        from pausepoint.service.heap import freeze_startup_heap

        async def main(gc_freeze):
            db = "sqlite:///{tmp_path}/" + str(gc_freeze) + ".db"
            settings = Settings(db=db, gc_freeze=gc_freeze)
            async with Engine(settings):
                return gc.get_freeze_count()

        assert asyncio.run(main(False)) == 0, "gc_freeze=False leaves the heap alone"
        frozen = asyncio.run(main(True))
        assert frozen > 10_000, frozen  # modules, classes, schemas
        assert not freeze_startup_heap(), "only the first engine freezes"
        assert asyncio.run(main(True)) <= frozen, "nothing new frozen"  # some freed since
        print("ok", frozen)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok")
