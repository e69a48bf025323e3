"""A tree of subflows paused and resumed from its root, through the public API only.

A root flow runs a ``foreach`` of N ``subflow`` tasks at once; each child sleeps
30 s by default (its clock frozen while paused), then ends. Once every child runs, the root
is paused (after a human-like delay); we measure how long until every child is
PAUSED (the cascade reaching the whole tree). After another delay the root is
resumed; we measure how long until every child runs again, and until the root
has COMPLETED (which includes what was left of the children's sleep).
Everything goes through ``Engine``: ``start_execution``, ``pause``,
``resume``, ``list_executions`` (by root) and ``wait``.

``--shape foreach_item`` runs the same tree as Kestra's ForEachItem: the root
cuts a stored file of N lines into one-line batches (``put_namespace_file``)
and starts a subflow per batch.

    python bench/subflow_tree.py [--children 1000] [--shape foreach|foreach_item]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from pausepoint.config import Settings
from pausepoint.service.engine import Engine

HUMAN_DELAY = 0.5  # seconds between seeing the tree run and pressing pause (and resume)
POLL = 0.02

CHILD_SLEEP_S = 30.0


def child_flow(sleep_s: float) -> str:
    """Its clock stands still while the cascade holds it: every child still has most of
    its sleep left when resumed, whatever the tree's size."""
    return f"""
id: leaf
namespace: bench.tree
clock: FREEZE
tasks:
  - id: work
    type: sleep
    duration: PT{sleep_s:g}S
  - id: done
    type: return
    format: ok
"""


def root_flow(children: int) -> str:
    values = json.dumps(list(range(children)))
    return f"""
id: fan
namespace: bench.tree
tasks:
  - id: each
    type: foreach
    values: {values}
    concurrency: 0
    tasks:
      - id: call
        type: subflow
        namespace: bench.tree
        flowId: leaf
  - id: after
    type: return
    format: all done
"""


def item_child_flow(sleep_s: float) -> str:
    return (
        child_flow(sleep_s)
        .replace("id: leaf", "id: item-leaf")
        .replace("tasks:", "inputs:\n  - id: items\n    type: STRING\ntasks:", 1)
    )


ITEMS_ROOT = """
id: fan-items
namespace: bench.tree
inputs:
  - id: file
    type: FILE
tasks:
  - id: each
    type: foreach_item
    items: "{{ inputs.file }}"
    namespace: bench.tree
    flowId: item-leaf
    inputs:
      items: "{{ taskrun.items }}"
  - id: after
    type: return
    format: all done
"""


async def start_root(engine: Engine, children: int, shape: str, sleep_s: float) -> str:
    """Load the flows and start the root; its id."""
    if shape == "foreach":
        await engine.put_flow(child_flow(sleep_s))
        await engine.put_flow(root_flow(children))
        return (await engine.start_execution("bench.tree", "fan")).id
    await engine.put_flow(item_child_flow(sleep_s))
    await engine.put_flow(ITEMS_ROOT)
    lines = "".join(f"{n}\n" for n in range(children)).encode()
    file = await engine.put_namespace_file("bench.tree", "items.txt", lines)
    return (await engine.start_execution("bench.tree", "fan-items", inputs={"file": file})).id


async def count(engine: Engine, root_id: str, state: str, children: int) -> int:
    records = await engine.list_executions(root_id=root_id, states=[state], limit=children + 1)
    return len(records)


async def until_count(
    engine: Engine, root_id: str, state: str, children: int, timeout: float
) -> float:
    """Seconds until ``children`` executions of the tree are in ``state``."""
    began = time.perf_counter()
    while await count(engine, root_id, state, children) < children:
        if time.perf_counter() - began > timeout:
            raise TimeoutError(f"fewer than {children} children {state} after {timeout}s")
        await asyncio.sleep(POLL)
    return time.perf_counter() - began


async def measure(
    workdir: Path, children: int, shape: str = "foreach", child_sleep_s: float = CHILD_SLEEP_S
) -> dict[str, Any]:
    settings = Settings(db=f"sqlite:///{workdir / f'tree-{shape}.db'}")
    async with Engine(settings) as engine:
        began = time.perf_counter()
        root = await engine.execution(await start_root(engine, children, shape, child_sleep_s))
        await until_count(engine, root.id, "RUNNING", children, timeout=600)
        all_running_s = time.perf_counter() - began
        await asyncio.sleep(HUMAN_DELAY)
        pressed = time.perf_counter()
        await engine.pause(root.id)
        all_paused_s = await until_count(engine, root.id, "PAUSED", children, timeout=600)
        await engine.wait(root.id, until=lambda view: view.state == "PAUSED", timeout=600)
        root_paused_s = time.perf_counter() - pressed
        await asyncio.sleep(HUMAN_DELAY)
        pressed = time.perf_counter()
        await engine.resume(root.id)
        all_resumed_s = await until_count(engine, root.id, "RUNNING", children, timeout=600)
        done = await engine.wait(root.id, timeout=600)
        completed_s = time.perf_counter() - pressed
        if done.state != "COMPLETED":
            raise RuntimeError(f"the root ended {done.state}: {done.error}")
        completed = await count(engine, root.id, "COMPLETED", children)
    return {
        "shape": shape,
        "children": children,
        "started_to_all_running_s": round(all_running_s, 3),
        "pause_to_all_children_paused_s": round(all_paused_s, 3),
        "pause_to_root_paused_s": round(root_paused_s, 3),
        "resume_to_all_children_running_s": round(all_resumed_s, 3),
        "resume_to_root_completed_s": round(completed_s, 3),
        "children_completed": completed,
        "child_sleep_s": child_sleep_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--children", type=int, default=1000)
    parser.add_argument("--shape", choices=("foreach", "foreach_item"), default="foreach")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pausepoint-tree-") as tmp:
        figures = asyncio.run(measure(Path(tmp), args.children, args.shape))
        print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
