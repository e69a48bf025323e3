"""A small OpenAI-compatible chat-completions server for the agent tests.

It runs on a free loopback port in a thread of its own, speaks
``POST /v1/chat/completions`` (whole replies and ``stream: true`` chunks), and
answers from a script: ``reply(request) -> Reply``. By default the reply is
chosen by the turn the request is on (how many assistant messages it already
carries), so a request sent again after a crash gets the same answer. Each
request is recorded; a reply may be delayed, and a client that goes away
during the delay is noticed and counted.
"""

from __future__ import annotations

import json
import select
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    content: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    delay: float = 0.0
    status: int = 200
    retry_after: float | None = None
    usage: dict[str, int] = field(
        default_factory=lambda: {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    )


def tool_call(call_id: str, name: str, **arguments: Any) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }


def turn_of(request: dict[str, Any]) -> int:
    """1 for the first call of a conversation, 2 for the next, …"""
    return 1 + sum(1 for m in request["messages"] if m.get("role") == "assistant")


@dataclass
class ModelServer:
    url: str
    script: Callable[[dict[str, Any]], Reply]
    requests: list[dict[str, Any]] = field(default_factory=list)
    disconnects: int = 0
    # Guards the counters; notified on every request, so a test blocks until one arrives.
    lock: threading.Condition = field(default_factory=threading.Condition)

    def by_turn(self, replies: dict[int, Reply]) -> None:
        self.script = lambda request: replies[turn_of(request)]

    def wait_started(self, count: int, timeout: float = 10.0) -> None:
        """Block until ``count`` requests have arrived."""
        with self.lock:
            if not self.lock.wait_for(lambda: len(self.requests) >= count, timeout):
                raise AssertionError(f"{count} model requests did not arrive within {timeout}s")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        model = self.server.model
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        body["_authorization"] = self.headers.get("Authorization")
        with model.lock:
            model.requests.append(body)
            model.lock.notify_all()
        reply = model.script(body)
        if reply.delay and self._client_left_within(reply.delay):
            with model.lock:
                model.disconnects += 1
            self.close_connection = True
            return
        if reply.status != 200:
            headers = {"Retry-After": str(reply.retry_after)} if reply.retry_after else {}
            self._send(reply.status, {"error": {"message": "scripted failure"}}, headers)
            return
        message: dict[str, Any] = {"role": "assistant", "content": reply.content}
        if reply.tool_calls:
            message["tool_calls"] = reply.tool_calls
        if body.get("stream"):
            self._stream(body, reply)
            return
        self._send(
            200,
            {
                "id": "chatcmpl-test",
                "model": body.get("model"),
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": reply.usage,
            },
        )

    def _client_left_within(self, seconds: float) -> bool:
        """Wait ``seconds``; True as soon as the client closes its connection."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([self.connection], [], [], min(left, 0.05))
            if readable and not self.connection.recv(1, 2):  # MSG_PEEK
                return True
        return False

    def _send(
        self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, body: dict[str, Any], reply: Reply) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        chunks: list[dict[str, Any]] = []
        words = reply.content.split(" ")
        for position, word in enumerate(words):
            piece = word if position == 0 else " " + word
            chunks.append({"choices": [{"index": 0, "delta": {"content": piece}}]})
        for index, call in enumerate(reply.tool_calls):
            arguments = call["function"]["arguments"]
            half = len(arguments) // 2
            head = {"index": index, "id": call["id"], "type": "function"}
            chunks.append(
                {
                    "choices": [
                        {
                            "index": 0,
                            "delta": {
                                "tool_calls": [
                                    head
                                    | {
                                        "function": {
                                            "name": call["function"]["name"],
                                            "arguments": arguments[:half],
                                        }
                                    }
                                ]
                            },
                        }
                    ]
                }
            )
            chunks.append(
                {
                    "choices": [
                        {
                            "index": 0,
                            "delta": {
                                "tool_calls": [
                                    {"index": index, "function": {"arguments": arguments[half:]}}
                                ]
                            },
                        }
                    ]
                }
            )
        chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        chunks.append({"choices": [], "usage": reply.usage, "model": body.get("model")})
        for chunk in chunks:
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    model: ModelServer


@contextmanager
def model_server() -> Iterator[ModelServer]:
    """A running model server; its script answers "done" until a test sets one."""
    server = _Server(("127.0.0.1", 0), _Handler)
    port = server.server_address[1]
    model = ModelServer(url=f"http://127.0.0.1:{port}/v1", script=lambda request: Reply("done"))
    server.model = model
    thread = threading.Thread(target=server.serve_forever, name="model-server", daemon=True)
    thread.start()
    try:
        yield model
    finally:
        server.shutdown()
        server.server_close()
