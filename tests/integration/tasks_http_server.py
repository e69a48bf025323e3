"""A real loopback HTTP server for the `http` task tests."""

from __future__ import annotations

import json
import select
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BIG_BODY_BYTES = 11 * 1024 * 1024


@dataclass
class ServerState:
    slow_started: threading.Event = field(default_factory=threading.Event)
    slow_client_disconnected: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Custom-Header", "Yes")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: object) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _route(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        received = self.rfile.read(length) if length else b""
        path = self.path
        if path == "/json":
            self._json(200, {"hello": "world", "items": [1, 2]})
        elif path == "/text":
            self._send(200, "plain text ✓".encode(), "text/plain; charset=utf-8")
        elif path == "/problem+json":
            self._send(200, b'{"title": "fine"}', "application/problem+json")
        elif path == "/bad-json":
            self._send(200, b"this is not json", "application/json")
        elif path == "/echo":
            self._json(
                200,
                {
                    "method": self.command,
                    "content_type": self.headers.get("Content-Type"),
                    "authorization": self.headers.get("Authorization"),
                    "body": received.decode(),
                },
            )
        elif path.startswith("/status/"):
            status = int(path.rsplit("/", 1)[1])
            body = "service unavailable,\nplease retry " + "x" * 400
            self._send(status, body.encode(), "text/plain")
        elif path == "/redirect":
            self._send(302, b"", "text/plain", Location="/json")
        elif path == "/big":
            self._send(200, b"a" * BIG_BODY_BYTES, "text/plain")
        elif path == "/slow":
            self._wait_for_disconnect()
        else:
            self._send(404, b"no such endpoint", "text/plain")

    def _wait_for_disconnect(self) -> None:
        state = self.server.state
        state.slow_started.set()
        self.close_connection = True
        while not state.stop.is_set():
            readable, _, _ = select.select([self.connection], [], [], 0.05)
            if not readable:
                continue
            try:
                peeked = self.connection.recv(1, socket.MSG_PEEK)
            except OSError:
                peeked = b""
            if peeked == b"":
                state.slow_client_disconnected.set()
                return

    do_GET = _route
    do_POST = _route
    do_PUT = _route
    do_DELETE = _route


class _Server(ThreadingHTTPServer):
    state: ServerState

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients that hang up early (cancellation, truncated bodies) are part of the tests.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


@dataclass
class RunningServer:
    base_url: str
    state: ServerState


@contextmanager
def serve() -> Iterator[RunningServer]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.state = ServerState()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield RunningServer(base_url=f"http://{host!s}:{port}", state=server.state)
    finally:
        server.state.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
