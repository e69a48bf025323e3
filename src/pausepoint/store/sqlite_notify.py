"""Notifications between processes sharing a SQLite file: Unix datagram sockets.

PostgreSQL tells other processes of accepted commands and new events with
LISTEN/NOTIFY; SQLite has nothing of the kind, so without this a process would
find what another one committed only at its next poll (``poll_interval``). An
HTTP process that accepts a resume needs the process running executions to
apply it within a millisecond, and its SSE followers need the events that
process commits as they land.

Every listening process binds a datagram socket in one directory per database
file (``<file>.notify/``). ``dialects.notify`` records, on the connection, which
executions a write transaction changed; once it commits, the :class:`Announcer`
sends one datagram (``{channel: [execution ids]}`` as JSON) to every other socket
there. Delivery is best effort, and polling stays the safety net: a socket
nobody reads any more (its process died) is removed; a datagram that finds a
receiver's queue full is owed to it and sent with the next commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterable, MutableMapping
from pathlib import Path
from typing import Any

import orjson

from pausepoint.store.dialects import NOTIFY_PENDING_KEY

log = logging.getLogger(__name__)

# How often a committing process looks again for listeners (processes come and go).
PEERS_LOOK_INTERVAL = 0.1
# One datagram holds at most this much; more ids go in more datagrams.
MAX_DATAGRAM = 16 * 1024
# Ids owed to a listener whose queue was full, at most (the rest is left to its poll).
OWED_LIMIT = 10_000
# sun_path holds 108 bytes on Linux (104 on macOS), the terminating NUL included.
_SUN_PATH_MAX = 100
_SOCKET_SUFFIX = ".sock"
_NAME_LENGTH = len(f"{2**22}-{'0' * 8}{_SOCKET_SUFFIX}")

SUPPORTED = hasattr(socket, "AF_UNIX")


def notify_directory(database: Path) -> Path:
    """The directory of the listeners of the SQLite file ``database``.

    Beside the file when a socket path there fits in ``sun_path``; otherwise a
    directory in ``/tmp`` named for the file's real path, which every process
    sharing the file computes alike."""
    real = Path(os.path.realpath(database))
    beside = real.with_name(real.name + ".notify")
    if len(os.fsencode(beside)) + 1 + _NAME_LENGTH <= _SUN_PATH_MAX:
        return beside
    digest = hashlib.sha256(os.fsencode(real)).hexdigest()[:24]
    return Path("/tmp") / f"pausepoint-notify-{digest}"


class Announcer:
    """Sends what each committed write transaction changed to the other listeners.

    Runs where the database's transactions commit (one at a time), never blocks:
    each send is a non-blocking ``sendto``. Looking for listeners costs one
    directory listing per ``PEERS_LOOK_INTERVAL`` at most, so that a process
    nobody listens to pays next to nothing per commit."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.setblocking(False)
        self._info: MutableMapping[str, Any] = {}
        self._peers: tuple[str, ...] = ()
        self._own: set[str] = set()  # this database's own listeners: told nothing
        self._next_look = 0.0
        self._owed: dict[str, dict[str, dict[str, None]]] = {}
        self.sent = 0  # datagrams handed to the kernel (for tests and curiosity)

    def attach(self, info: MutableMapping[str, Any]) -> None:
        """Collect the notifications of the connection whose ``info`` this is."""
        self._info = info
        info[NOTIFY_PENDING_KEY] = []

    def skip(self, path: str) -> None:
        """Tell nothing to ``path`` (a listener of this same database)."""
        self._own.add(path)
        self._next_look = 0.0

    def committed(self) -> None:
        """After a commit: send what it changed to every other listener."""
        pending: list[tuple[str, list[str]]] | None = self._info.get(NOTIFY_PENDING_KEY)
        if not pending:
            return
        try:
            if time.monotonic() >= self._next_look:
                self._look()
            if self._peers:
                self._announce(pending)
        except Exception:  # the commit stands: a lost notification only delays a poll
            log.exception("could not notify other processes of a commit")
        finally:
            pending.clear()

    def close(self) -> None:
        self._socket.close()

    # -- sending --------------------------------------------------------------------

    def _look(self) -> None:
        self._next_look = time.monotonic() + PEERS_LOOK_INTERVAL
        try:
            with os.scandir(self.directory) as entries:
                found = [
                    entry.path
                    for entry in entries
                    if entry.name.endswith(_SOCKET_SUFFIX) and entry.path not in self._own
                ]
        except OSError:  # no directory: nobody has listened yet
            found = []
        self._peers = tuple(found)
        for gone in self._owed.keys() - set(found):
            del self._owed[gone]

    def _announce(self, pending: list[tuple[str, list[str]]]) -> None:
        changed: dict[str, dict[str, None]] = {}
        for channel, ids in pending:
            changed.setdefault(channel, {}).update(dict.fromkeys(ids))
        datagrams = _datagrams(changed)
        lost: list[str] = []
        for peer in self._peers:
            owed = self._owed.pop(peer, None)
            if owed is None:
                outcome = self._send(peer, datagrams)
                if outcome == "full":
                    self._owe(peer, changed)
            else:
                for channel, changed_ids in changed.items():
                    owed.setdefault(channel, {}).update(changed_ids)
                outcome = self._send(peer, _datagrams(owed))
                if outcome == "full":
                    self._owe(peer, owed)
            if outcome == "gone":
                lost.append(peer)
        if lost:
            self._peers = tuple(peer for peer in self._peers if peer not in lost)

    def _send(self, peer: str, datagrams: list[bytes]) -> str:
        """``sent``, ``full`` (the receiver's queue is: try with the next commit) or ``gone``."""
        for datagram in datagrams:
            try:
                self._socket.sendto(datagram, peer)
            except BlockingIOError:
                return "full"
            except ConnectionRefusedError:  # nobody reads it: its process is gone
                with contextlib.suppress(OSError):
                    os.unlink(peer)
                return "gone"
            except FileNotFoundError:
                return "gone"
            except OSError as error:
                log.debug("could not notify %s: %s", peer, error)
                return "full"
            self.sent += 1
        return "sent"

    def _owe(self, peer: str, changed: dict[str, dict[str, None]]) -> None:
        if sum(len(ids) for ids in changed.values()) <= OWED_LIMIT:
            self._owed[peer] = changed


def _datagrams(changed: dict[str, dict[str, None]]) -> list[bytes]:
    """``changed`` as datagrams of at most ``MAX_DATAGRAM`` bytes (about, for huge ids)."""
    whole = orjson.dumps({channel: list(ids) for channel, ids in changed.items()})
    if len(whole) <= MAX_DATAGRAM:
        return [whole]
    datagrams: list[bytes] = []
    for channel, ids in changed.items():
        chunk: list[str] = []
        size = 0
        for execution_id in ids:
            if chunk and size + len(execution_id) + 3 > MAX_DATAGRAM - len(channel) - 8:
                datagrams.append(orjson.dumps({channel: chunk}))
                chunk, size = [], 0
            chunk.append(execution_id)
            size += len(execution_id) + 3
        if chunk:
            datagrams.append(orjson.dumps({channel: chunk}))
    return datagrams


class Listener:
    """A socket in the notify directory; what arrives there is handed to the callbacks,
    in the event loop, once per execution and channel per wake-up."""

    def __init__(self, directory: Path, callbacks: dict[str, Callable[[str], None]]) -> None:
        self.directory = directory
        self.callbacks = callbacks
        self.path = str(directory / f"{os.getpid()}-{secrets.token_hex(4)}{_SOCKET_SUFFIX}")
        self._socket: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Bind the socket and read it in the running loop."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            self._bind(sock)
            with contextlib.suppress(OSError):  # a burst fits a larger buffer
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            self._loop = asyncio.get_running_loop()
            self._loop.add_reader(sock.fileno(), self._readable)
        except BaseException:
            sock.close()
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            raise
        self._socket = sock

    def _bind(self, sock: socket.socket) -> None:
        for attempt in range(3):
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            try:
                sock.bind(self.path)
                return
            except FileNotFoundError:  # the last listener to leave removed the directory
                if attempt == 2:
                    raise

    def close(self) -> None:
        sock, self._socket = self._socket, None
        if sock is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(sock.fileno())
        sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        with contextlib.suppress(OSError):  # the last to leave tidies up (not if others remain)
            self.directory.rmdir()

    def _readable(self) -> None:
        changed: dict[str, dict[str, None]] = {}
        while self._socket is not None:
            try:
                datagram = self._socket.recv(MAX_DATAGRAM * 2)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                log.debug("notification socket %s failed", self.path, exc_info=True)
                break
            try:
                message = orjson.loads(datagram)
                for channel, ids in message.items():
                    changed.setdefault(channel, {}).update(dict.fromkeys(ids))
            except (orjson.JSONDecodeError, AttributeError, TypeError):
                log.debug("ignored a notification that is not ours: %r", datagram[:100])
        for channel, ids in changed.items():
            callback = self.callbacks.get(channel)
            if callback is not None:
                _call_each(callback, ids)


def _call_each(callback: Callable[[str], None], ids: Iterable[str]) -> None:
    for execution_id in ids:
        try:
            callback(execution_id)
        except Exception:  # one listener's bug must not stop the others hearing
            log.exception("a notification callback failed")
