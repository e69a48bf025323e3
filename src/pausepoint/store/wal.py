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

Durability is unchanged: every commit is in the log (fsynced per the store's
``synchronous``) before it is acknowledged, and the checkpointing connection
syncs the database file with the same setting.
"""

from __future__ import annotations

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


class WalCheckpointer:
    """A thread that checkpoints the WAL of the SQLite file ``path`` after writes."""

    def __init__(self, path: Path, synchronous: str) -> None:
        self.path = path
        self.synchronous = synchronous
        self._written = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.checkpoints = 0  # how many ran (for tests and curiosity)

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

    def _run(self) -> None:
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            while True:
                self._written.wait()
                if not self._stopping:
                    time.sleep(CHECKPOINT_DELAY)
                self._written.clear()
                # After the clear: a stop() from now on sets the event again.
                if self._stopping:
                    return
                self._checkpoint(conn)
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            _, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if frames > 0 and copied == frames:  # start the log over here, not in a commit
                (version,) = conn.execute("PRAGMA user_version").fetchone()
                conn.execute(f"PRAGMA user_version = {int(version)}")
        except sqlite3.Error as error:  # another process checkpoints, or the file is gone
            log.debug("WAL checkpoint of %s skipped: %s", self.path, error)
            return
        self.checkpoints += 1
