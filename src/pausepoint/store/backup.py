"""Online copies of a SQLite database, for backup and restore.

The copy uses SQLite's backup API (``sqlite3.Connection.backup``) in one step:
the whole copy is one read transaction, so it is the database as of one commit,
and in WAL mode writers go on committing meanwhile (a stepped copy would restart
whenever another connection writes). ``VACUUM INTO`` would be as consistent and
compact the copy, but it rebuilds every table and index on the way, which takes
longer on a busy server; a page copy does only reads.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from pausepoint.errors import InvalidInput
from pausepoint.store import schema


def copy_sqlite(source: Path, target: Path) -> None:
    """Copy the database ``source`` to the new file ``target`` (which must not exist),
    consistently while other processes write to ``source``; check the copy's integrity.

    The copy is written beside ``target`` and renamed into place, so a copy cut
    short leaves no file that looks like a backup. Raises ``InvalidInput`` naming
    the file when ``source`` is not a database or the copy does not check out.
    """
    if not source.is_file():
        raise InvalidInput(f"{source}: no SQLite database there")
    partial = target.with_name(target.name + ".partial")
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()
    try:
        src = sqlite3.connect(source, timeout=30)
        try:
            dst = sqlite3.connect(partial)
            try:
                src.backup(dst, pages=-1)
                dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
                problem = dst.execute("PRAGMA quick_check").fetchone()[0]
            finally:
                dst.close()
        finally:
            src.close()
        if problem != "ok":
            raise InvalidInput(f"{source}: the copy does not check out ({problem})")
        os.replace(partial, target)
    except sqlite3.DatabaseError as error:
        raise InvalidInput(f"{source}: cannot be copied: {error}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()


def is_pausepoint_database(path: Path) -> bool:
    """Whether ``path`` is a SQLite file with pausepoint's executions table."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.DatabaseError:
        return False
    try:
        found = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
            (schema.executions.name,),
        ).fetchone()
        return found is not None
    except sqlite3.DatabaseError:
        return False
    finally:
        conn.close()
