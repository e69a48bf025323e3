"""Pure tasks run inside the step that starts them: fewer transactions, nothing unrecorded."""

from __future__ import annotations

from pausepoint.models import TERMINAL_EVENT_TYPES
from pausepoint.service.engine import Engine

STEPS = 200


def chain_flow() -> str:
    tasks = "".join(
        f'  - id: r{i}\n    type: return\n    format: "{{{{ {i} * 2 }}}}"\n' for i in range(STEPS)
    )
    last = "  - id: said\n    type: log\n    message: done\n"
    return f"id: chain\nnamespace: pure\ntasks:\n{tasks}{last}"


async def test_a_chain_of_pure_tasks_commits_in_few_transactions_and_records_every_run(
    engine: Engine,
) -> None:
    transactions: list[float] = []
    engine.observe_checkpoints(transactions.append)
    await engine.put_flow(chain_flow())
    execution = await engine.start_execution("pure", "chain")
    view = await engine.wait(execution.id, until=lambda v: v.is_terminal, timeout=20)
    assert view.state == "COMPLETED"
    runs = {run.task_id: run for run in view.task_runs}
    assert len(runs) == STEPS + 1
    assert all(runs[f"r{i}"].outputs == {"value": i * 2} for i in range(STEPS))
    assert runs["said"].state == "SUCCESS"
    events = await engine.events(execution.id, limit=5000)
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    assert sum(event.type == "task.completed" for event in events) == STEPS + 1
    assert events[-1].type in TERMINAL_EVENT_TYPES
    # One transaction per 64 pure steps or so, not one per step.
    assert len(transactions) <= STEPS // 64 + 4, len(transactions)
