"""Copying SQLite's write-ahead log back into the database file, off the commit path.

By default SQLite makes the commit that takes the WAL past 1,000 pages copy it
into the database file and fsync that file, inside the commit: every thirtieth
resume or so took 10 ms instead of 1.5. Here a thread with a connection of its
own does that shortly after writes, as a PASSIVE checkpoint, which waits for no
reader or writer; the next write then starts the log over.

Once the log is wholly copied, the next write starts it over, and that write
pays for it: SQLite rewrites the log's header and syncs it, half a millisecond
here, which a resume after a person's pause always met. So after a checkpoint
that copied everything, this thread makes that write itself (it sets
``user_version`` to the value it has): the store's next commit then appends to a
fresh log.

Under a steady stream of writes the log may never be wholly copied at the moment
a write begins, and SQLite starts it over only then. So the store's connection
still checkpoints itself once the log passes ``BACKSTOP_PAGES``: by then this
thread has copied nearly all of it, so that commit pays for little, and the log
stays bounded.

A checkpoint that cannot be written (a full disk, a read-only file system) is
skipped and logged once until one succeeds again; the thread waits for the next
commit, so it never spins, and after an I/O error it opens a new connection.

Durability is unchanged: every commit is in the log (fsynced per the store's
``synchronous``) before it is acknowledged, and the checkpointing connection
syncs the database file with the same setting.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

# Writes that come within this long of each other share one checkpoint.
CHECKPOINT_DELAY = 0.05
# The store's own connection checkpoints only past this many pages (16 MiB at 4 KiB).
BACKSTOP_PAGES = 4_000
BUSY_TIMEOUT_SECONDS = 1.0
# SQLite's primary result codes for a file that cannot be written just now.
_CANNOT_WRITE = frozenset({sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR})


class WalCheckpointer:
    """A thread that checkpoints the WAL of the SQLite file ``path`` after writes."""

    def __init__(self, path: Path, synchronous: str) -> None:
        self.path = path
        self.synchronous = synchronous
        self._written = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.checkpoints = 0  # how many ran (for tests and curiosity)
        self.failing = False  # the last checkpoint could not be written (logged once)

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="pausepoint-wal-checkpoint", daemon=True
        )
        self._thread.start()

    def written(self) -> None:
        """Something was committed: checkpoint soon."""
        self._written.set()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stopping = True
        self._written.set()
        self._thread.join()
        self._thread = None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
        )
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        return conn

    def _run(self) -> None:
        conn = self._connect()
        try:
            while True:
                self._written.wait()
                if not self._stopping:
                    time.sleep(CHECKPOINT_DELAY)
                self._written.clear()
                # After the clear: a stop() from now on sets the event again.
                if self._stopping:
                    return
                if not self._checkpoint(conn):
                    conn = self._reconnect(conn)
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> bool:
        """One checkpoint; False when the connection met an I/O error and should go."""
        try:
            _, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if frames > 0 and copied == frames:  # start the log over here, not in a commit
                (version,) = conn.execute("PRAGMA user_version").fetchone()
                conn.execute(f"PRAGMA user_version = {int(version)}")
        except sqlite3.Error as error:  # another process checkpoints, or the file is gone
            code = getattr(error, "sqlite_errorcode", 0) & 0xFF
            if code in _CANNOT_WRITE:
                if not self.failing:
                    log.warning("WAL checkpoint of %s cannot be written: %s", self.path, error)
                self.failing = True
            else:
                log.debug("WAL checkpoint of %s skipped: %s", self.path, error)
            return code != sqlite3.SQLITE_IOERR
        if self.failing:
            log.warning("WAL checkpoint of %s works again", self.path)
            self.failing = False
        self.checkpoints += 1
        return True

    def _reconnect(self, conn: sqlite3.Connection) -> sqlite3.Connection:
        """A new connection after an I/O error; the old one if none can be opened now
        (the next commit tries again)."""
        try:
            fresh = self._connect()
        except sqlite3.Error as error:
            log.debug("WAL checkpointer of %s cannot reconnect yet: %s", self.path, error)
            return conn
        with contextlib.suppress(sqlite3.Error):
            conn.close()
        return fresh
