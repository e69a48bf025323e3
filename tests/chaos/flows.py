"""The flows the crash storm runs, and what each of them must end in.

Every python step calls ``chaos_tasks:step`` (a short async sleep that returns
a fresh random token) and most pass the previous step's token along, so a
recorded result that changed after a later step consumed it shows up as a
broken chain.
"""

from __future__ import annotations

from dataclasses import dataclass

NAMESPACE = "chaos"
BEHAVIORS = ("RESUME", "WARN", "FAIL", "CANCEL")
SEQUENTIAL_LENGTHS = (5, 12, 20)
BRANCHES = 4


@dataclass(frozen=True)
class FlowSpec:
    """One chaos flow: its YAML and the facts the final checks rely on."""

    flow_id: str
    kind: str  # sequential | timed_pause | approval | parallel | finally | agent
    source: str
    task_ids: tuple[str, ...]  # every task run a completed execution has
    # (step, earlier step): ``step`` was called with the earlier step's recorded token
    chain: tuple[tuple[str, str], ...] = ()
    behavior: str | None = None


def _step(task_id: str, ms: int, prev: str | None = None, indent: int = 2) -> str:
    pad = " " * indent
    lines = [
        f"{pad}- id: {task_id}",
        f"{pad}  type: python",
        f"{pad}  function: chaos_tasks:step",
        f"{pad}  kwargs:",
        f"{pad}    label: {task_id}",
        f"{pad}    ms: {ms}",
    ]
    if prev is not None:
        lines.append(f'{pad}    prev: "{{{{ outputs.{prev}.token }}}}"')
    return "\n".join(lines)


def sequential(length: int) -> FlowSpec:
    ids = [f"s{i}" for i in range(1, length + 1)]
    steps = [
        _step(task_id, 5 + (7 * i) % 36, ids[i - 1] if i else None) for i, task_id in enumerate(ids)
    ]
    flow_id = f"sequential_{length}"
    source = (
        f"id: {flow_id}\nnamespace: {NAMESPACE}\ntasks:\n"
        + "\n".join(steps)
        + f'\noutputs:\n  last: "{{{{ outputs.{ids[-1]}.token }}}}"\n'
    )
    chain = tuple(zip(ids[1:], ids[:-1], strict=True))
    return FlowSpec(flow_id, "sequential", source, tuple(ids), chain=chain)


def timed_pause(behavior: str, duration: str) -> FlowSpec:
    flow_id = f"timed_{behavior.lower()}"
    source = "\n".join(
        [
            f"id: {flow_id}",
            f"namespace: {NAMESPACE}",
            "tasks:",
            _step("before", 10),
            "  - id: wait",
            "    type: io.kestra.plugin.core.flow.Pause",
            f"    pauseDuration: {duration}",
            f"    behavior: {behavior}",
            _step("after", 10, "before"),
            "",
        ]
    )
    return FlowSpec(
        flow_id,
        "timed_pause",
        source,
        ("before", "wait", "after"),
        chain=(("after", "before"),),
        behavior=behavior,
    )


def approval() -> FlowSpec:
    source = "\n".join(
        [
            "id: approval",
            f"namespace: {NAMESPACE}",
            "tasks:",
            _step("before", 15),
            "  - id: approval",
            "    type: pause",
            "    onResume:",
            "      - id: approved",
            "        type: BOOLEAN",
            "      - id: note",
            "        type: STRING",
            "        defaults: none",
            "  - id: after",
            "    type: python",
            "    function: chaos_tasks:step",
            "    kwargs:",
            "      label: after",
            "      ms: 10",
            '      prev: "{{ outputs.approval.onResume }}"',
            "",
        ]
    )
    return FlowSpec("approval", "approval", source, ("before", "approval", "after"))


def parallel() -> FlowSpec:
    branches = []
    ids = ["fan"]
    chain: list[tuple[str, str]] = []
    for b in range(1, BRANCHES + 1):
        first, second = f"b{b}_1", f"b{b}_2"
        ids += [f"b{b}", first, second]
        chain.append((second, first))
        branches += [
            f"      - id: b{b}",
            "        type: sequential",
            "        tasks:",
            _step(first, 5 + 9 * b, indent=10),
            _step(second, 40 - 7 * b, first, indent=10),
        ]
    ids.append("join")
    source = "\n".join(
        [
            "id: parallel",
            f"namespace: {NAMESPACE}",
            "tasks:",
            "  - id: fan",
            "    type: parallel",
            "    tasks:",
            *branches,
            _step("join", 10, f"b{BRANCHES}_2"),
            "",
        ]
    )
    chain.append(("join", f"b{BRANCHES}_2"))
    return FlowSpec("parallel", "parallel", source, tuple(ids), chain=tuple(chain))


def with_finally() -> FlowSpec:
    source = "\n".join(
        [
            "id: with_finally",
            f"namespace: {NAMESPACE}",
            "inputs:",
            "  - id: fail",
            "    type: BOOLEAN",
            "    defaults: false",
            "tasks:",
            _step("s1", 20),
            "  - id: boom",
            "    type: python",
            "    function: chaos_tasks:fail_if",
            "    kwargs:",
            "      label: boom",
            '      fail: "{{ inputs.fail }}"',
            "      ms: 15",
            _step("s3", 20, "s1"),
            "finally:",
            _step("f1", 15),
            _step("f2", 15, "f1"),
            "",
        ]
    )
    return FlowSpec(
        "with_finally",
        "finally",
        source,
        ("s1", "boom", "s3", "f1", "f2"),
        chain=(("s3", "s1"), ("f2", "f1")),
    )


AGENT_TOOL_CALLS = 2
"""Model turns of the chaos agent that call the ``step`` tool before it answers."""


def agent(model_url: str) -> FlowSpec:
    """An agent whose model (``tests.agents.model_server``, scripted by ``agent_replies``)
    calls the python tool ``step`` twice, then answers: kills land mid-turn."""
    source = "\n".join(
        [
            "id: agent",
            f"namespace: {NAMESPACE}",
            "tasks:",
            _step("before", 10),
            "  - id: bot",
            "    type: agent",
            "    provider:",
            f"      baseUrl: {model_url}",
            "      model: chaos-model",
            "    system: You keep a chain of tokens.",
            '    prompt: "Extend the chain that starts at {{ outputs.before.token }}."',
            "    tools:",
            "      - name: step",
            "        python: chaos_tasks:step",
            _step("after", 10, "before"),
            "",
        ]
    )
    return FlowSpec(
        "agent", "agent", source, ("before", "bot", "after"), chain=(("after", "before"),)
    )


def all_flows(model_url: str | None = None) -> list[FlowSpec]:
    """Every chaos flow; the agent flow only when a model server's URL is given."""
    durations = ("PT0.3S", "PT0.5S", "PT0.8S", "PT1S")
    return [
        *(sequential(n) for n in SEQUENTIAL_LENGTHS),
        *(timed_pause(b, d) for b, d in zip(BEHAVIORS, durations, strict=True)),
        approval(),
        parallel(),
        with_finally(),
        *([agent(model_url)] if model_url else []),
    ]
