"""Events: one execution's log as a JSON page or live SSE, and the organization's live feed.

SSE format (``Accept: text/event-stream``): each event is
``id: <seq>`` / ``event: <type>`` / ``data: <EventView JSON>``; comment lines
(``: keep-alive``) keep idle connections open. Reconnect with ``Last-Event-ID``
(or ``?after=``) to receive exactly the events after that one. The stream of
one execution ends after its terminal event. The organization feed uses ids
``<execution_id>:<seq>`` and carries the events published from now on.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response, StreamingResponse

from pausepoint.api.deps import Caller, call
from pausepoint.api.schemas import EventPage
from pausepoint.api.sse import StreamTiming, execution_events, organization_events
from pausepoint.errors import FieldError, InvalidInput
from pausepoint.service.operations import EventsRequest, OpenStreamRequest

router = APIRouter(prefix="/api/v1", tags=["events"])

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
SSE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A JSON page, or with `Accept: text/event-stream` a live SSE stream.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


def timing(request: Request) -> StreamTiming:
    configured = getattr(request.app.state, "sse_timing", None)
    return configured if isinstance(configured, StreamTiming) else StreamTiming()


def wants_stream(request: Request) -> bool:
    return "text/event-stream" in request.headers.get("accept", "")


def parse_last_event_id(
    value: str | None, where: tuple[str, str] = ("header", "Last-Event-ID")
) -> int | None:
    """The sequence number an SSE client resumes after; ``where`` names the field it came in."""
    if value is None or not value.strip():
        return None
    tail = value.strip().rpartition(":")[2]
    if not (tail.isascii() and tail.isdigit()) or len(tail) > 18:
        raise InvalidInput(
            f"{where[1]} {value!r} is not an event id from this stream",
            [FieldError(where, "expected a sequence number", "int_parsing")],
        )
    return int(tail)


@router.get("/executions/{execution_id}/events", response_model=EventPage, responses=SSE_RESPONSE)
async def execution_events_route(
    request: Request,
    execution_id: str,
    caller: Caller,
    after: Annotated[
        int, Query(ge=0, le=2**62, description="Only events after this sequence number.")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", description="SSE: resume after this id.")
    ] = None,
) -> Response | EventPage:
    """The execution's events, oldest first: a page, or live SSE ending after the terminal one."""
    if wants_stream(request):
        resume = parse_last_event_id(last_event_id)
        start = resume if resume is not None else after
        engine = await call(request, caller, OpenStreamRequest(execution_id=execution_id))
        frames = execution_events(engine, execution_id, after=start, timing=timing(request))
        return StreamingResponse(frames, media_type="text/event-stream", headers=SSE_HEADERS)
    events = await call(
        request, caller, EventsRequest(execution_id=execution_id, after=after, limit=limit + 1)
    )
    page = events[:limit]
    next_after = page[-1].seq if len(events) > limit else None
    return EventPage(items=page, next_after=next_after)


@router.get("/events", responses=SSE_RESPONSE, response_class=StreamingResponse)
async def organization_events_route(request: Request, caller: Caller) -> StreamingResponse:
    """Live SSE of every execution the caller's organization owns (ids ``<execution_id>:<seq>``)."""
    engine = await call(request, caller, OpenStreamRequest())
    frames = organization_events(engine, timing=timing(request))
    return StreamingResponse(frames, media_type="text/event-stream", headers=SSE_HEADERS)
