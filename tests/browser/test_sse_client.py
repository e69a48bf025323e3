"""The UI's SSE client (fetch + stream parser), run in the browser against scripted streams."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playwright.sync_api import BrowserContext

from tests.browser.conftest import Server

PARSE_SPLIT_FRAMES = """
async () => {
  const { readEvents } = await import("/ui/js/sse.js");
  const chunks = [
    ": connected\\n\\nid: 7\\nevent: task.started\\nda",
    'ta: {"seq": 7}\\n\\n',
    'id: 8\\r\\nevent: workflow.completed\\r\\ndata: {"seq":\\r\\ndata: 8}\\r\\n\\r\\n',
  ];
  const body = new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(new TextEncoder().encode(chunk));
      controller.close();
    },
  });
  const events = [];
  for await (const event of readEvents(body)) events.push(event);
  return events;
}
"""

RECONNECT_AFTER_A_DROP = """
async () => {
  const { follow } = await import("/ui/js/sse.js");
  const requests = [];
  const frames = [
    "id: run1:4\\nevent: task.started\\ndata: {}\\n\\n",  // then the connection drops
    "id: run1:5\\nevent: workflow.completed\\ndata: {}\\n\\n",
  ];
  window.fetch = async (url, options) => {
    requests.push({ url, lastEventId: options.headers["Last-Event-ID"] ?? null });
    const frame = frames.shift();
    return new Response(new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(frame));
        controller.close();
      },
    }), { status: 200, headers: { "Content-Type": "text/event-stream" } });
  };
  const seen = [];
  let opened = 0;
  await follow("/executions/run1/events", {
    signal: new AbortController().signal,
    onEvent: (event) => seen.push(event.id),
    onOpen: () => { opened += 1; },
  });
  return { requests, seen, opened };
}
"""


def test_frames_split_across_chunks_and_crlf_lines_parse(
    server: Server, new_context: Callable[..., BrowserContext]
) -> None:
    page = new_context().new_page()
    page.goto(server.base_url)
    events: list[dict[str, Any]] = page.evaluate(PARSE_SPLIT_FRAMES)
    assert [(e["id"], e["type"], e["data"], e["terminal"]) for e in events] == [
        ("7", "task.started", {"seq": 7}, False),
        ("8", "workflow.completed", {"seq": 8}, True),
    ]


def test_a_dropped_stream_reconnects_with_last_event_id_and_stops_after_the_end(
    server: Server, new_context: Callable[..., BrowserContext]
) -> None:
    page = new_context().new_page()
    page.goto(server.base_url)
    result = page.evaluate(RECONNECT_AFTER_A_DROP)
    assert result["requests"] == [
        {"url": "/api/v1/executions/run1/events", "lastEventId": None},
        {"url": "/api/v1/executions/run1/events", "lastEventId": "run1:4"},
    ]
    assert result["seen"] == ["run1:4", "run1:5"]
    assert result["opened"] == 2
