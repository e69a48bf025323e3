"""The rules of an approval task, voted over real HTTP by keys that act as people.

A table of rule sets (``quorum``, ``denyPolicy``, ``approvers``,
``separationOfDuties``, ``adminOverride``, ``commentRequired``): each row plays
its votes one after the other through ``POST /api/v1/executions/{id}/review``,
each from a key made for its voter (user, groups, role), and states the status
every vote gets and where the request ends (decided, and by whom, or still
open).

Then a property: 3 to 8 voters vote at once, each from a client of its own.
The audit gives the order in which the control plane accepted their votes; a
reference written here (not the engine's tally) says which vote of that order
decides. The task run's outputs must be that decision, by that voter, with the
votes up to it (exactly those were accepted, the others refused with 409), and
its branch must run once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from pausepoint.testing import assert_eventually
from tests.api.conftest import RunningServer, running_server

NAMESPACE = "api.approval_rules"
DECIDED_STATE = {"APPROVED": "COMPLETED", "DENIED": "CANCELLED"}  # denyBehavior CANCEL
BRANCH = {"APPROVED": "approved", "DENIED": "denied"}
Role = Literal["viewer", "operator", "admin"]
Choice = Literal["approve", "deny"]
CHOICES: tuple[Choice, ...] = ("approve", "deny")


# -- the flow and the people --------------------------------------------------------------


def approval_flow(flow_id: str, rules: dict[str, Any], before: str | None = None) -> str:
    """A flow whose approval ``review`` has ``rules``; ``before`` puts a Pause task
    (``pause``) or another approval (``approval``) ahead of it."""
    tasks: list[dict[str, Any]] = []
    if before == "pause":
        tasks.append({"id": "gate", "type": "pause"})
    elif before == "approval":
        tasks.append({"id": "first", "type": "approval"})
    tasks.append(
        {
            "id": "review",
            "type": "approval",
            **rules,
            "onApprove": [{"id": "approved", "type": "return", "format": "approved"}],
            "onDeny": [{"id": "denied", "type": "return", "format": "denied"}],
        }
    )
    tasks.append({"id": "done", "type": "return", "format": "done"})
    return json.dumps({"id": flow_id, "namespace": NAMESPACE, "tasks": tasks})  # JSON is YAML


@dataclass(frozen=True)
class Voter:
    user: str
    groups: tuple[str, ...] = ()
    role: Role = "operator"


def counted_groups(rules: dict[str, Any], voter: Voter) -> list[str]:
    """The quorum or approver groups a vote of ``voter`` counts for."""
    approvers = rules.get("approvers") or rules.get("assignment") or {}
    quorum = rules.get("quorum", 1)
    counted = set(approvers.get("groups", ())) | (
        set(quorum) if isinstance(quorum, dict) else set()
    )
    return sorted(counted & set(voter.groups))


class People:
    """An API key per voter (made once), and an HTTP client acting as them."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.keys: dict[Voter, str] = {}

    async def key(self, voter: Voter) -> str:
        if voter not in self.keys:
            key, _ = await self.server.engine.as_org("acme").create_api_key(
                voter.role, f"{voter.user} {voter.role}", user=voter.user, groups=voter.groups
            )
            self.keys[voter] = key
        return self.keys[voter]

    @contextlib.asynccontextmanager
    async def client(self, voter: Voter) -> AsyncIterator[httpx.AsyncClient]:
        headers = {"X-API-Key": await self.key(voter)}
        async with httpx.AsyncClient(
            base_url=self.server.base_url, headers=headers, timeout=30
        ) as http:
            yield http


async def start(people: People, flow_id: str, starter: Voter) -> str:
    async with people.client(starter) as http:
        reply = await http.post(
            "/api/v1/executions", json={"namespace": NAMESPACE, "flow_id": flow_id}
        )
    assert reply.status_code == 201, reply.text
    execution_id: str = reply.json()["id"]
    return execution_id


async def pause_open(http: httpx.AsyncClient, execution_id: str, task_id: str) -> bool:
    view = (await http.get(f"/api/v1/executions/{execution_id}")).json()
    return any(p["task_id"] == task_id for p in view["pause_points"])


async def open_request(http: httpx.AsyncClient, execution_id: str, task_id: str) -> dict[str, Any]:
    """The pause point of approval ``task_id`` once its request is open."""

    async def opened() -> dict[str, Any] | None:
        view = (await http.get(f"/api/v1/executions/{execution_id}")).json()
        return next(
            (p for p in view["pause_points"] if p["task_id"] == task_id and p["approval"]), None
        )

    found: dict[str, Any] = await assert_eventually(
        opened, timeout=20, what=f"the request of '{task_id}' open"
    )
    return found


async def vote_commands(
    http: httpx.AsyncClient, execution_id: str, pause_id: str
) -> list[dict[str, Any]]:
    """The votes on request ``pause_id`` the control plane accepted, in the order it did."""
    reply = await http.get(f"/api/v1/executions/{execution_id}/audit")
    assert reply.status_code == 200, reply.text
    audit = sorted(reply.json(), key=lambda command: command["seq"])
    return [
        c
        for c in audit
        if c["kind"] == "resume" and "vote" in c["payload"] and c["payload"]["pause_id"] == pause_id
    ]


async def decided_events(
    http: httpx.AsyncClient, execution_id: str, task_id: str = "review"
) -> list[dict[str, Any]]:
    reply = await http.get(f"/api/v1/executions/{execution_id}/events", params={"limit": 1000})
    assert reply.status_code == 200, reply.text
    page = reply.json()
    assert page["next_after"] is None, "more than a page of events"
    return [
        e
        for e in page["items"]
        if e["type"] == "approval.decided" and e["data"]["task_id"] == task_id
    ]


STILL = frozenset({"PAUSED", "COMPLETED", "WARNING", "FAILED", "CANCELLED", "TERMINATED"})


async def standing_still(
    http: httpx.AsyncClient, execution_id: str, pause_id: str, accepted: int
) -> dict[str, Any]:
    """The execution once the ``accepted`` votes on ``pause_id`` are applied and it stands
    still: PAUSED on the request still open, or ended."""

    async def still() -> dict[str, Any]:
        commands = await vote_commands(http, execution_id, pause_id)
        assert [c["status"] for c in commands] == ["applied"] * accepted, commands
        view: dict[str, Any] = (await http.get(f"/api/v1/executions/{execution_id}")).json()
        assert view["state"] in STILL, view["state"]
        return view

    found: dict[str, Any] = await assert_eventually(
        still, timeout=20, what=f"{accepted} votes applied to execution {execution_id}"
    )
    return found


def runs_of(view: dict[str, Any], task_id: str) -> list[dict[str, Any]]:
    return [run for run in view["task_runs"] if run["task_id"] == task_id]


def refusal(reply: httpx.Response) -> str:
    """What a refused vote says: the message, or for a 422 the fields it names."""
    detail = reply.json()["detail"]
    if isinstance(detail, list):
        return " ".join(".".join(str(part) for part in error["loc"]) for error in detail)
    return str(detail)


# -- the table ----------------------------------------------------------------------------

SAM = Voter("sam")  # starts the executions unless a row says otherwise
ADA = Voter("ada", role="admin")
ALICE, BOB, CAROL, DAVE = Voter("alice"), Voter("bob"), Voter("carol"), Voter("dave")
DANA = Voter("dana", ("ops", "security"))
ERIN = Voter("erin", ("ops",))
OTTO = Voter("otto", ("ops",))
SIMONE = Voter("simone", ("security",))
FRANK = Voter("frank", ("finance",))


@dataclass(frozen=True)
class Ballot:
    voter: Voter
    decision: Choice
    status: int
    says: str = ""  # a pattern the refusal matches (for a 422: the field it names)
    comment: str | None = None


@dataclass(frozen=True)
class Row:
    rules: dict[str, Any]
    ballots: tuple[Ballot, ...]
    decision: Literal["APPROVED", "DENIED"] | None  # None: the request is still open
    by: Voter | None = None
    starter: Voter = SAM
    before: Literal["pause", "approval"] | None = None  # a Pause task or an approval first
    before_by: Voter | None = None  # who resumes or approves it
    # Who the open request says may not approve, besides the starter.
    excluded: tuple[str, ...] = field(default=())


SOD = "separation of duties"
NOT_APPROVER = "is not one of the approvers"
# Decided: the request is closed, or the execution already ended with it.
DECIDED = r"no open approval request|is not open|cannot vote on (completed|cancelled) execution"

ROWS: dict[str, Row] = {
    "quorum 2 of anyone": Row(
        {"quorum": 2},
        (Ballot(ALICE, "approve", 202), Ballot(BOB, "approve", 202)),
        "APPROVED",
        BOB,
    ),
    "2 of ops and 1 of security, one voter in both": Row(
        {"quorum": {"ops": 2, "security": 1}},
        (
            Ballot(DANA, "approve", 202),
            Ballot(FRANK, "approve", 403, NOT_APPROVER),
            Ballot(ERIN, "approve", 202),
        ),
        "APPROVED",
        ERIN,
    ),
    "2 of ops do not make up for security": Row(
        {"quorum": {"ops": 2, "security": 1}},
        (
            Ballot(ERIN, "approve", 202),
            Ballot(OTTO, "approve", 202),
            Ballot(SIMONE, "approve", 202),
        ),
        "APPROVED",
        SIMONE,
    ),
    "denyPolicy ANY: one deny denies": Row(
        {"quorum": 3, "denyPolicy": "ANY"},
        (
            Ballot(ALICE, "approve", 202),
            Ballot(BOB, "deny", 202),
            Ballot(CAROL, "approve", 409, DECIDED),
        ),
        "DENIED",
        BOB,
    ),
    "denyPolicy MAJORITY: denies past half the quorum deny": Row(
        {"quorum": 3, "denyPolicy": "MAJORITY"},
        (
            Ballot(ALICE, "deny", 202),
            Ballot(BOB, "approve", 202),
            Ballot(CAROL, "deny", 202),
        ),
        "DENIED",
        CAROL,
    ),
    "denyPolicy MAJORITY: denies of half the quorum do not": Row(
        {"quorum": 2, "denyPolicy": "MAJORITY"},
        (
            Ballot(ALICE, "deny", 202),
            Ballot(BOB, "approve", 202),
            Ballot(CAROL, "approve", 202),
        ),
        "APPROVED",
        CAROL,
    ),
    "denyPolicy MAJORITY: one deny of three does not": Row(
        {"quorum": 3, "denyPolicy": "MAJORITY"},
        (
            Ballot(ALICE, "deny", 202),
            Ballot(BOB, "approve", 202),
            Ballot(CAROL, "approve", 202),
            Ballot(DAVE, "approve", 202),
        ),
        "APPROVED",
        DAVE,
    ),
    "the starter may deny but not approve": Row(
        {},
        (Ballot(SAM, "approve", 403, SOD), Ballot(SAM, "deny", 202)),
        "DENIED",
        SAM,
    ),
    "without separation of duties the starter approves": Row(
        {"separationOfDuties": False},
        (Ballot(SAM, "approve", 202),),
        "APPROVED",
        SAM,
    ),
    "whoever resumed an earlier Pause task may not approve": Row(
        {},
        (Ballot(Voter("rita"), "approve", 403, SOD), Ballot(ALICE, "approve", 202)),
        "APPROVED",
        ALICE,
        before="pause",
        before_by=Voter("rita"),
        excluded=("rita",),
    ),
    "whoever approved an earlier approval may not approve the next": Row(
        {},
        (Ballot(Voter("ann"), "approve", 403, SOD), Ballot(BOB, "approve", 202)),
        "APPROVED",
        BOB,
        before="approval",
        before_by=Voter("ann"),
        excluded=("ann",),
    ),
    "adminOverride lets the admin starter approve": Row(
        {"adminOverride": True},
        (Ballot(ADA, "approve", 202),),
        "APPROVED",
        ADA,
        starter=ADA,
    ),
    "without adminOverride the admin starter may not approve": Row(
        {"adminOverride": False},
        (Ballot(ADA, "approve", 403, SOD),),
        None,
        starter=ADA,
    ),
    "a user not among the approvers may not vote": Row(
        {"approvers": {"users": ["alice"]}},
        (
            Ballot(Voter("mallory"), "approve", 403, NOT_APPROVER),
            Ballot(Voter("mallory"), "deny", 403, NOT_APPROVER),
            Ballot(ALICE, "approve", 202),
        ),
        "APPROVED",
        ALICE,
    ),
    "approvers by role": Row(
        {"approvers": {"roles": ["admin"]}},
        (Ballot(BOB, "approve", 403, NOT_APPROVER), Ballot(ADA, "approve", 202)),
        "APPROVED",
        ADA,
    ),
    "Kestra's assignment names the approver groups": Row(
        {"assignment": {"groups": ["ops"]}},
        (Ballot(FRANK, "deny", 403, NOT_APPROVER), Ballot(ERIN, "approve", 202)),
        "APPROVED",
        ERIN,
    ),
    "no one votes twice": Row(
        {"quorum": 2},
        (Ballot(ALICE, "approve", 202), Ballot(ALICE, "deny", 409, "already voted")),
        None,
    ),
    "a vote after the decision is refused": Row(
        {},
        (Ballot(ALICE, "approve", 202), Ballot(BOB, "deny", 409, DECIDED)),
        "APPROVED",
        ALICE,
    ),
    "a deny needs its comment ON_DENY": Row(
        {"quorum": 2, "commentRequired": "ON_DENY"},
        (
            Ballot(BOB, "deny", 422, "body.comment"),
            Ballot(ALICE, "approve", 202),
            Ballot(BOB, "deny", 202, comment="too risky"),
        ),
        "DENIED",
        BOB,
    ),
    "a viewer may not vote": Row(
        {},
        (Ballot(Voter("vic", role="viewer"), "approve", 403, "operator role"),),
        None,
    ),
}


@pytest.mark.parametrize("row", ROWS.values(), ids=ROWS.keys())
async def test_the_rules_decide_who_may_vote_and_when_it_is_decided(
    server: RunningServer, row: Row
) -> None:
    await server.engine.as_org("acme").put_flow(approval_flow("review", row.rules, row.before))
    people = People(server)
    execution_id = await start(people, "review", row.starter)
    async with server.client("acme", "viewer") as watcher:
        if row.before is not None:
            assert row.before_by is not None
            async with people.client(row.before_by) as http:
                if row.before == "pause":
                    await assert_eventually(
                        lambda: pause_open(watcher, execution_id, "gate"), what="gate open"
                    )
                    reply = await http.post(f"/api/v1/executions/{execution_id}/resume")
                else:
                    await open_request(watcher, execution_id, "first")
                    reply = await http.post(
                        f"/api/v1/executions/{execution_id}/review", json={"decision": "approve"}
                    )
                assert reply.status_code == 202, reply.text
        request = await open_request(watcher, execution_id, "review")
        excluded = request["approval"]["excluded"]
        if row.rules.get("separationOfDuties") is False:
            assert excluded == {}, excluded  # no one is kept from approving
        else:
            assert set(excluded) == {row.starter.user, *row.excluded}, excluded
            assert "started this execution" in excluded[row.starter.user], excluded

        accepted: list[Ballot] = []
        for number, ballot in enumerate(row.ballots, 1):
            async with people.client(ballot.voter) as http:
                body = {"decision": ballot.decision, "comment": ballot.comment}
                reply = await http.post(f"/api/v1/executions/{execution_id}/review", json=body)
            what = f"vote {number} ({ballot.voter.user} {ballot.decision})"
            assert reply.status_code == ballot.status, f"{what}: {reply.text}"
            if ballot.status == 202:
                accepted.append(ballot)
            else:
                assert re.search(ballot.says, refusal(reply)), f"{what}: {reply.text}"

        expected_votes = [
            (b.voter.user, b.decision, counted_groups(row.rules, b.voter), b.comment)
            for b in accepted
        ]
        state = DECIDED_STATE[row.decision] if row.decision else "PAUSED"
        view = await standing_still(watcher, execution_id, request["id"], len(accepted))
        assert view["state"] == state, (view["state"], view["error"])
        commands = await vote_commands(watcher, execution_id, request["id"])
        assert [c["actor"] for c in commands] == [b.voter.user for b in accepted]
        (review,) = runs_of(view, "review")
        decided = await decided_events(watcher, execution_id)
        if row.decision is None:
            (pause,) = [p for p in view["pause_points"] if p["task_id"] == "review"]
            votes = pause["approval"]["votes"]
            assert review["state"] == "PAUSED"
            assert decided == []
            assert runs_of(view, "approved") == runs_of(view, "denied") == []
        else:
            assert row.by is not None
            outputs = review["outputs"]
            votes = outputs["votes"]
            assert outputs["decision"] == row.decision
            assert outputs["by"] == row.by.user
            assert outputs["comment"] == accepted[-1].comment
            assert len(decided) == 1
            assert len(runs_of(view, BRANCH[row.decision])) == 1
            other = "DENIED" if row.decision == "APPROVED" else "APPROVED"
            assert runs_of(view, BRANCH[other]) == []
            assert len(runs_of(view, "done")) == (1 if row.decision == "APPROVED" else 0)
        assert [
            (v["by"], v["decision"], v["groups"], v.get("comment")) for v in votes
        ] == expected_votes


# -- concurrent votes against a reference ------------------------------------------------

GROUPS = ("ops", "security", "finance")
RULE_SETS: tuple[dict[str, Any], ...] = (
    {"quorum": 2},
    {"quorum": 3, "denyPolicy": "MAJORITY"},
    {"quorum": {"ops": 2, "security": 1}},
    {"quorum": {"ops": 2, "security": 1}, "denyPolicy": "MAJORITY"},
    {"quorum": 4, "denyPolicy": "MAJORITY", "approvers": {"groups": ["ops", "security"]}},
)


@dataclass(frozen=True)
class Scenario:
    rule_set: int
    votes: tuple[tuple[Voter, Choice], ...]

    def __repr__(self) -> str:
        votes = ", ".join(f"{v.user}{list(v.groups)} {choice}" for v, choice in self.votes)
        return f"Scenario({RULE_SETS[self.rule_set]}: {votes})"


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    rule_set = draw(st.integers(0, len(RULE_SETS) - 1))
    count = draw(st.integers(3, 8))
    votes = tuple(
        (
            Voter(f"v{number}", tuple(sorted(draw(st.frozensets(st.sampled_from(GROUPS)))))),
            draw(st.sampled_from(CHOICES)),
        )
        for number in range(count)
    )
    return Scenario(rule_set, votes)


def may_vote(rules: dict[str, Any], voter: Voter) -> bool:
    """Whether ``voter`` (an operator) is an approver under ``rules``."""
    approvers = rules.get("approvers") or {}
    if not approvers and not isinstance(rules.get("quorum", 1), dict):
        return True  # no approvers named: anyone who may control the execution
    return bool(counted_groups(rules, voter))


def reference_decision(
    rules: dict[str, Any], votes: list[tuple[Voter, Choice]]
) -> tuple[Literal["APPROVED", "DENIED"], int] | None:
    """The decision ``votes``, in this serial order, reach under ``rules``, and the index of
    the vote that reaches it; None while the request stays open."""
    quorum = rules.get("quorum", 1)
    needed = sum(quorum.values()) if isinstance(quorum, dict) else quorum
    majority = rules.get("denyPolicy", "ANY") == "MAJORITY"
    approvals: dict[str, int] = {group: 0 for group in GROUPS}
    approved = denied = 0
    for index, (voter, choice) in enumerate(votes):
        if choice == "deny":
            denied += 1
            if (2 * denied > needed) if majority else True:
                return "DENIED", index
            continue
        approved += 1
        for group in voter.groups:
            approvals[group] += 1
        if isinstance(quorum, dict):
            if all(approvals[group] >= count for group, count in quorum.items()):
                return "APPROVED", index
        elif approved >= quorum:
            return "APPROVED", index
    return None


async def play(server: RunningServer, people: People, scenario: Scenario) -> None:
    rules = RULE_SETS[scenario.rule_set]
    by_user = dict(scenario.votes)
    voters = {voter.user: voter for voter, _ in scenario.votes}
    async with server.client("acme", "admin") as admin:
        reply = await admin.post(
            "/api/v1/executions",
            json={"namespace": NAMESPACE, "flow_id": f"concurrent-{scenario.rule_set}"},
        )
        assert reply.status_code == 201, reply.text
        execution_id = reply.json()["id"]
        pause_id = (await open_request(admin, execution_id, "review"))["id"]
        for voter, _ in scenario.votes:
            await people.key(voter)  # made before, so that the votes race each other only

        async def vote(voter: Voter, choice: Choice) -> tuple[str, httpx.Response]:
            async with people.client(voter) as http:
                body = {"decision": choice}
                return voter.user, await http.post(
                    f"/api/v1/executions/{execution_id}/review", json=body
                )

        replies = dict(await asyncio.gather(*(vote(v, c) for v, c in scenario.votes)))
        statuses = {user: reply.status_code for user, reply in replies.items()}
        assert set(statuses.values()) <= {202, 403, 409}, {u: r.text for u, r in replies.items()}

        commands = await vote_commands(admin, execution_id, pause_id)
        order = [command["actor"] for command in commands]
        assert sorted(order) == sorted(u for u, status in statuses.items() if status == 202)
        serial = [(voters[user], by_user[voters[user]]) for user in order]
        outcome = reference_decision(rules, serial)
        for user, status in statuses.items():
            if not may_vote(rules, voters[user]):
                assert status in (403, 409), (user, replies[user].text)  # 409 once decided
            elif user not in order:
                assert outcome is not None and status == 409, (user, replies[user].text)
        if outcome is None:
            assert all(
                statuses[voter.user] == 202 for voter, _ in scenario.votes if may_vote(rules, voter)
            )
        else:
            assert outcome[1] == len(serial) - 1, (
                f"the vote of {order[outcome[1]]} decided {outcome[0]}, "
                f"yet {order[outcome[1] + 1 :]} were accepted after it"
            )
        expected_votes = [
            (voter.user, choice, counted_groups(rules, voter)) for voter, choice in serial
        ]
        state = DECIDED_STATE[outcome[0]] if outcome else "PAUSED"
        view = await standing_still(admin, execution_id, pause_id, len(order))
        assert view["state"] == state, (view["state"], view["error"])
        (review,) = runs_of(view, "review")
        decided = await decided_events(admin, execution_id)
        if outcome is None:
            (pause,) = [p for p in view["pause_points"] if p["task_id"] == "review"]
            votes = pause["approval"]["votes"]
            assert decided == [] and runs_of(view, "approved") == runs_of(view, "denied") == []
            terminated = await admin.post(
                f"/api/v1/executions/{execution_id}/terminate", json={"reason": "undecided"}
            )
            assert terminated.status_code == 200, terminated.text
        else:
            decision, deciding = outcome
            outputs = review["outputs"]
            votes = outputs["votes"]
            assert (outputs["decision"], outputs["by"]) == (decision, order[deciding])
            assert len(decided) == 1, decided
            assert len(runs_of(view, BRANCH[decision])) == 1
            assert len(runs_of(view, "approved")) + len(runs_of(view, "denied")) == 1
        assert [(v["by"], v["decision"], v["groups"]) for v in votes] == expected_votes


async def test_concurrent_votes_decide_as_their_acceptance_order_says(tmp_path: Any) -> None:
    async with running_server(tmp_path / "votes.db") as server:
        for number, rules in enumerate(RULE_SETS):
            flow = approval_flow(f"concurrent-{number}", rules)
            await server.engine.as_org("acme").put_flow(flow)
        people = People(server)
        loop = asyncio.get_running_loop()

        # Hypothesis runs in a worker thread; each example runs in the server's loop.
        @settings(
            max_examples=15,
            deadline=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(scenario=scenarios())
        def explore(scenario: Scenario) -> None:
            note(repr(scenario))  # hypothesis prints a composite's draw as nothing
            example = asyncio.run_coroutine_threadsafe(play(server, people, scenario), loop)
            try:
                example.result(timeout=60)
            except TimeoutError:
                example.cancel()
                raise

        await asyncio.to_thread(explore)
