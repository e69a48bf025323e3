"""The approvals inbox: open approval requests across executions, and who may decide them."""

from __future__ import annotations

from pausepoint.engine.approvals import eligible, kept_from_approving
from pausepoint.engine.state import iso
from pausepoint.errors import Conflict, FieldError, InvalidInput, NotFound
from pausepoint.flow.durations import parse_duration
from pausepoint.flow.model import ApprovalTask
from pausepoint.models import ApprovalItem, ApprovalPage, MyVote
from pausepoint.service.approvals import Reviewer, approval_request_view
from pausepoint.service.callbacks import (
    CallbackToken,
    MintedCallback,
    callback_url,
    sign_callback,
)
from pausepoint.service.core import iso_or_none
from pausepoint.service.events import EventsLayer
from pausepoint.service.links import (
    Action,
    LinkPage,
    LinkRefused,
    MintedLink,
    link_url,
    new_link,
    sign,
    verify,
)

# Executions not ended are read in pages of this many, up to INBOX_SCAN in all.
INBOX_PAGE = 200
INBOX_SCAN = 10_000
OPEN_STATES = ("RUNNING", "PAUSING", "PAUSED")


def my_vote(task: ApprovalTask, pause: dict, reviewer: Reviewer) -> MyVote:  # type: ignore[type-arg]
    """Whether ``reviewer`` may approve or deny this request, and if not, why."""
    votes = pause.get("votes") or []
    earlier = next((vote for vote in votes if vote["by"] == reviewer.user), None)
    if earlier is not None:
        return MyVote(voted=earlier["decision"], why_not=f"you voted {earlier['decision']}")
    if reviewer.role == "viewer":
        return MyVote(why_not="viewers do not decide")
    if eligible(task, reviewer.user, list(reviewer.groups), reviewer.role) is None:
        return MyVote(why_not="you are not one of its approvers")
    excluded = pause.get("excluded") or {}
    kept_out = kept_from_approving(task, excluded, reviewer.user, reviewer.role)
    if kept_out is not None:
        return MyVote(may_deny=True, why_not=f"separation of duties: you {kept_out}")
    return MyVote(may_approve=True, may_deny=True)


def tool_call_vote(reviewer: Reviewer) -> MyVote:
    """An agent's tool call: whoever may control the execution decides it."""
    if reviewer.role == "viewer":
        return MyVote(why_not="viewers do not decide")
    return MyVote(may_approve=True, may_deny=True)


class InboxLayer(EventsLayer):
    async def approvals(
        self,
        reviewer: Reviewer,
        *,
        assigned_to_me: bool = False,
        namespace: str | None = None,
        flow_id: str | None = None,
        labels: dict[str, str] | None = None,
        older_than: str | None = None,
        limit: int = 100,
    ) -> ApprovalPage:
        """Open approval requests, oldest first; ``assigned_to_me`` keeps those ``reviewer``
        may still vote on; ``older_than`` (an ISO-8601 duration) those open that long."""
        now = self.clock()
        opened_before = None
        if older_than is not None:
            try:
                opened_before = now - parse_duration(older_than)
            except ValueError as error:
                raise InvalidInput(
                    f"older_than: {error}", [FieldError(("query", "older_than"), str(error))]
                ) from None
        items: list[ApprovalItem] = []
        before: tuple[float, str] | None = None
        scanned = 0
        while scanned < INBOX_SCAN:
            page = await self.store.list_executions(
                self.org_id,
                statuses=OPEN_STATES,
                namespace=namespace,
                flow_id=flow_id,
                labels=labels,
                limit=INBOX_PAGE,
                before=before,
            )
            scanned += len(page)
            for record in page:
                pauses = record.state.get("pauses") or {}
                requests = {
                    k: p for k, p in pauses.items() if p.get("kind") in ("decision", "approval")
                }
                if not requests:
                    continue
                index = (await self._env_for(record)).index
                for pause_id, pause in requests.items():
                    if opened_before is not None and pause["opened_at"] > opened_before:
                        continue
                    task = index.task(pause["task_path"])
                    mine = (
                        my_vote(task, pause, reviewer)
                        if isinstance(task, ApprovalTask)
                        else tool_call_vote(reviewer)
                    )
                    if assigned_to_me and not (mine.may_approve or mine.may_deny):
                        continue
                    items.append(
                        ApprovalItem(
                            execution_id=record.id,
                            namespace=record.namespace,
                            flow_id=record.flow_id,
                            labels=record.labels,
                            execution_state=record.status,
                            task_id=pause["task_id"],
                            task_run_id=pause["task_run_id"],
                            pause_id=pause_id,
                            opened_at=iso(pause["opened_at"]),
                            due=iso_or_none(pause.get("deadline")),
                            waiting_seconds=round(max(0.0, now - pause["opened_at"]), 3),
                            request=approval_request_view(index, pause),
                            me=mine,
                        )
                    )
            if len(page) < INBOX_PAGE:
                break
            last = page[-1]
            before = (last.created_at, last.id)
        items.sort(key=lambda item: item.opened_at)
        return ApprovalPage(items=items[:limit], total=len(items))

    # -- decision links ------------------------------------------------------------------

    @property
    def link_key(self) -> bytes:
        return self.secret_box.derive("decision-links")

    async def mint_decision_link(
        self,
        execution_id: str,
        pause_id: str,
        approver: str,
        action: Action,
        *,
        groups: tuple[str, ...] = (),
        expires_in: float | None = None,
        must_be_open: bool = True,
    ) -> MintedLink:
        """A signed link voting ``action`` on request ``pause_id`` as ``approver``.

        It expires after ``expires_in`` seconds (default ``decision_link_ttl``), and no
        later than the request's own deadline. ``Conflict`` if the request is not open.
        """
        record = await self._record(execution_id)
        pause = (record.state.get("pauses") or {}).get(pause_id)
        if must_be_open and (pause is None or pause.get("kind") != "decision"):
            raise Conflict(
                f"execution {execution_id} has no open approval request {pause_id!r}: "
                "links are made for open requests"
            )
        now = self.clock()
        expires_at = now + (
            expires_in if expires_in is not None else self.settings.decision_link_ttl
        )
        if pause is not None and pause.get("deadline") is not None:
            expires_at = min(expires_at, pause["deadline"])
        if not groups:
            groups = await self.groups_of(approver)
        link = new_link(
            self.org_id, execution_id, pause_id, approver, action, expires_at, tuple(groups)
        )
        token = sign(link, self.link_key)
        return MintedLink(
            url=link_url(self.settings.public_url, token),
            token=token,
            approver=approver,
            action=action,
            expires_at=iso(link.expires_at),
        )

    async def groups_of(self, user: str) -> tuple[str, ...]:
        """The groups the organization's live API keys issued for ``user`` name (a link
        made for a person counts toward their groups' quorums, as their key would)."""
        found: list[str] = []
        for record in await self.store.list_api_keys(self.org_id):
            if record.user == user and record.revoked_at is None:
                found.extend(group for group in record.groups if group not in found)
        return tuple(found)

    async def open_decision_link(self, token: str) -> LinkPage:
        """What a link's page shows; ``LinkRefused`` (403/404/409/410) saying why it cannot
        be used. Nothing is recorded."""
        link = verify(token, self.link_key, self.clock())
        record = await self.store.get_execution(link.execution_id)
        if record is None or record.org_id != link.org_id:
            raise LinkRefused(f"execution {link.execution_id} was not found", http_status=404)
        pause = (record.state.get("pauses") or {}).get(link.pause_id)
        if pause is None or pause.get("kind") != "decision":
            raise LinkRefused(
                f"this approval request is no longer open (execution {record.id} is "
                f"{record.status.lower()}): it was decided, expired or cancelled",
                http_status=409,
            )
        index = (await self._env_for(record)).index
        task = index.task(pause["task_path"])
        assert isinstance(task, ApprovalTask)
        mine = my_vote(task, pause, Reviewer(link.approver, link.groups, "operator"))
        if mine.voted is not None:
            raise LinkRefused(
                f"this link was already used: {link.approver} voted {mine.voted}",
                http_status=409,
            )
        why = (mine.why_not or "").replace("you ", f"{link.approver} ", 1)
        if link.action == "approve" and not mine.may_approve:
            raise LinkRefused(f"{link.approver} may not approve: {why}")
        if not (mine.may_approve or mine.may_deny):
            raise LinkRefused(f"{link.approver} may not decide: {why}")
        return LinkPage(
            link=link,
            namespace=record.namespace,
            flow_id=record.flow_id,
            execution_id=record.id,
            task_id=pause["task_id"],
            request=approval_request_view(index, pause),
            may_approve=mine.may_approve,
        )

    # -- callback tokens -----------------------------------------------------------------

    @property
    def callback_key(self) -> bytes:
        return self.secret_box.derive("callbacks")

    async def mint_callback(
        self, execution_id: str, task_id: str, *, expires_in: float | None = None
    ) -> MintedCallback:
        """A callback token completing the Pause task ``task_id`` of ``execution_id``."""
        record = await self._record(execution_id)
        index = (await self._env_for(record)).index
        if index.pause_task(task_id) is None:
            raise NotFound(f"execution {execution_id} has no Pause task {task_id!r}")
        ttl = expires_in if expires_in is not None else self.settings.callback_ttl
        token = CallbackToken(self.org_id, execution_id, task_id, int(self.clock() + ttl))
        signed = sign_callback(token, self.callback_key)
        return MintedCallback(
            url=callback_url(self.settings.public_url, signed),
            token=signed,
            task_id=task_id,
            expires_at=iso(token.expires_at),
        )
