"""``pausepoint backup`` and ``restore``: a SQLite database and its secrets key, copied.

A backup is two files: the database as of one commit (``store/backup.py``), and,
when the server keeps its secrets key in the file beside the database (no
``secrets_key`` setting), that key as ``BACKUP.secrets.key``. Without the key
the copy's stored secrets, decision links and callback tokens cannot be
opened, so the key goes with the data.

PostgreSQL is backed up by its own tools (``pg_dump -Fc`` / ``pg_restore``), which
are consistent online as well; :func:`postgres_advice` says how.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from pausepoint.config import Settings
from pausepoint.errors import InvalidInput
from pausepoint.store.backup import copy_sqlite, is_pausepoint_database
from pausepoint.store.sql import sqlite_path

KEY_FILE = ".pausepoint-secrets.key"  # beside the database (service/access.py)
KEY_SUFFIX = ".secrets.key"


@dataclass(frozen=True)
class Copied:
    database: Path
    key: Path | None  # None: the key is configured (secrets_key), not a file


def _sqlite_file(url: str, what: str) -> Path:
    path = sqlite_path(url)
    if path is None or str(path) in ("", ":memory:"):
        raise InvalidInput(f"{what} must be a SQLite file (sqlite:///PATH), got {url!r}")
    return path


def backup(settings: Settings, target: Path) -> Copied:
    """Copy the database of ``settings`` (and its key file) to ``target``, which must
    not exist; safe while servers run on the database."""
    source = _sqlite_file(settings.db, "backup's database")
    key_target = target.with_name(target.name + KEY_SUFFIX)
    for path in (target, key_target):
        if path.exists():
            raise InvalidInput(f"{path} exists already: a backup never overwrites a file")
    if not target.parent.is_dir():
        raise InvalidInput(f"{target.parent}: no such directory")
    copy_sqlite(source, target)
    key_file = source.parent / KEY_FILE
    if settings.secrets_key is not None or not key_file.exists():
        return Copied(target, None)
    shutil.copyfile(key_file, key_target)
    os.chmod(key_target, 0o600)
    return Copied(target, key_target)


def restore(backup_file: Path, db_url: str) -> Copied:
    """Put the backup ``backup_file`` (and its key, if it has one) in place as the database
    of ``db_url``, whose directory must be new or empty."""
    target = _sqlite_file(db_url, "--db")
    if not backup_file.is_file() or not is_pausepoint_database(backup_file):
        raise InvalidInput(f"{backup_file}: not a pausepoint backup (no executions table)")
    directory = target.parent
    if directory.exists() and any(directory.iterdir()):
        raise InvalidInput(f"{directory} is not empty: restore into a new or empty directory")
    directory.mkdir(parents=True, exist_ok=True)
    copy_sqlite(backup_file, target)
    key_backup = backup_file.with_name(backup_file.name + KEY_SUFFIX)
    if not key_backup.exists():
        return Copied(target, None)
    key_file = directory / KEY_FILE
    shutil.copyfile(key_backup, key_file)
    os.chmod(key_file, 0o600)
    return Copied(target, key_file)


def postgres_advice(url: str) -> str:
    """How to back up and restore a PostgreSQL database (pausepoint leaves it to its tools)."""
    return (
        f"{url.split('@')[-1]} is PostgreSQL: back it up with its own tools, online and "
        "consistent:\n"
        "  pg_dump -Fc -d DATABASE_URL -f pausepoint.dump\n"
        "and restore into a new, empty database with:\n"
        "  pg_restore --no-owner -d NEW_DATABASE_URL pausepoint.dump\n"
        "Keep the secrets key (PAUSEPOINT_SECRETS_KEY) with the dump: stored secrets, "
        "decision links and callback tokens need it."
    )
