"""Decision links: minting them (admins), and the minimal page a link opens (no API key).

``GET /decide/{token}`` only shows what the link would do, so a mail scanner
fetching it decides nothing; the page's form POSTs the vote. A link that cannot
be used gets a page saying why, with the matching status (403 altered or not
allowed, 404 not found, 409 decided or already used, 410 expired), and nothing
is recorded.
"""

from __future__ import annotations

import html

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from pausepoint.api.deps import Caller, body_duration, call
from pausepoint.api.kestra_shapes import form_parts
from pausepoint.errors import InvalidInput, PausepointError
from pausepoint.service.engine import Engine
from pausepoint.service.links import LinkPage, MintedLink
from pausepoint.service.operations import MintLinkRequest
from pausepoint.wire import LinkBody

api = APIRouter(prefix="/api/v1/executions", tags=["approvals"])
pages = APIRouter(tags=["approvals"], include_in_schema=False)
MAX_FORM_BYTES = 64 * 1024


@api.post("/{execution_id}/approvals/{pause_id}/links", response_model=MintedLink)
async def mint_link(
    request: Request, execution_id: str, pause_id: str, caller: Caller, body: LinkBody
) -> MintedLink:
    """A signed, expiring link that votes on this open request as ``approver`` (admins)."""
    expires_in = body_duration(body.expires_in, "expires_in")
    operation = MintLinkRequest(
        execution_id=execution_id,
        pause_id=pause_id,
        approver=body.approver,
        decision=body.decision,
        groups=tuple(body.groups),
        expires_in=expires_in,
    )
    return await call(request, caller, operation)


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font:16px system-ui;max-width:40em;margin:2em auto;padding:0 1em}"
        "textarea,input{width:100%;margin:.3em 0 1em}button{font-size:1em;margin-right:1em;"
        "padding:.4em 1em}.why{color:#a00}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>",
        status_code=status,
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


def _refused(error: PausepointError) -> HTMLResponse:
    return _page(
        "This link cannot be used",
        f"<p class='why' id='why'>{html.escape(error.message)}</p><p>Nothing was recorded.</p>",
        error.http_status,
    )


def _form(page: LinkPage, token: str, problem: str | None = None) -> str:
    link, request = page.link, page.request
    esc = html.escape
    votes = "".join(
        f"<li>{esc(v.by)}: {esc(v.decision)}{(' — ' + esc(v.comment)) if v.comment else ''}</li>"
        for v in request.votes
    )
    quorum = (
        request.quorum
        if isinstance(request.quorum, int)
        else ", ".join(f"{n} of {g}" for g, n in request.quorum.items())
    )
    names = request.decisions
    buttons = []
    if link.action in ("approve", "review") and page.may_approve:
        buttons.append(
            f"<button name='decision' value='approve' id='approve'>{esc(names['approve'])}</button>"
        )
    if link.action in ("deny", "review"):
        buttons.append(
            f"<button name='decision' value='deny' id='deny'>{esc(names['deny'])}</button>"
        )
    problem_html = f"<p class='why' id='why'>{esc(problem)}</p>" if problem else ""
    return (
        f"<p><b>{esc(request.title or page.task_id)}</b></p>"
        f"<p>Flow {esc(page.namespace)}.{esc(page.flow_id)}, execution "
        f"<code>{esc(page.execution_id)}</code>, task {esc(page.task_id)}.</p>"
        f"<p>You decide as <b id='approver'>{esc(link.approver)}</b>. "
        f"Approvals needed: {esc(str(quorum))}.</p>"
        + (f"<p>Votes so far:</p><ul>{votes}</ul>" if votes else "")
        + problem_html
        + f"<form method='post' action='/decide/{esc(token)}'>"
        f"<label>Comment ({esc(request.comment_required.lower().replace('_', ' '))} required)"
        "<textarea name='comment' id='comment' rows='3'></textarea></label>"
        + "".join(buttons)
        + "</form>"
    )


@pages.get("/decide/{token}")
async def open_link(request: Request, token: str) -> HTMLResponse:
    """The page a decision link opens: what it decides, as whom; a form to do it."""
    try:
        page = await _engine(request).open_decision_link(token)
    except PausepointError as error:
        return _refused(error)
    return _page("Approval request", _form(page, token))


@pages.post("/decide/{token}")
async def use_link(request: Request, token: str) -> HTMLResponse:
    """Vote through the link (the page's form): a page with the outcome or the reason."""
    engine = _engine(request)
    body = await request.body()
    try:
        if len(body) > MAX_FORM_BYTES:
            raise InvalidInput("the form is too large")
        form, _ = form_parts(body, request.headers.get("content-type", ""))
    except InvalidInput as error:
        why = html.escape(error.message)
        return _page("This link cannot be used", f"<p class='why'>{why}</p>", 400)
    decision = str(form.get("decision") or "")
    comment = str(form.get("comment") or "").strip() or None
    inputs = {
        key.removeprefix("inputs."): str(value)
        for key, value in form.items()
        if key.startswith("inputs.")
    }
    try:
        page, result = await engine.use_decision_link(token, decision, comment, inputs)
    except InvalidInput as error:
        try:
            page = await engine.open_decision_link(token)
        except PausepointError as refused:
            return _refused(refused)
        return _page("Approval request", _form(page, token, error.message), 422)
    except PausepointError as error:
        return _refused(error)
    verb = "approved" if decision == "approve" else "denied"
    return _page(
        "Thank you",
        f"<p id='done'>{html.escape(page.link.approver)} {verb}: the vote was recorded "
        f"({'applied' if result.applied else 'accepted'}).</p>",
    )
