"""What the store's repositories need from a database, whatever its dialect.

The statements are written once, as synchronous functions of a SQLAlchemy
connection. A :class:`Database` decides how such a function runs (batched on the
event loop's thread for SQLite, or in a greenlet over a pooled asyncpg connection) and what a read
or a write transaction is on its dialect. Repositories (``store/flows.py``,
``store/commands.py``, …) hold the SQL and take a database; ``SqlStore``
composes them and hands each call to :meth:`Database.run`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pausepoint.store.dialects import lock_for_migrations

R = TypeVar("R")


class Database(ABC):
    """One database: its connections, its transactions and where statements run."""

    dialect: str
    # How to read a JSON column through the driver cursor (see ``dialects.json_loader``).
    loads: Callable[[Any], Any]
    # Calls made in one turn of the loop already share one transaction (SQLite): callers
    # need not batch their writes themselves.
    batches_calls: bool = False

    @abstractmethod
    async def open(self) -> None:
        """Connect and bring the schema to the newest migration."""

    @abstractmethod
    async def close(self) -> None:
        """Let go of every connection (and thread); calls after this fail."""

    @abstractmethod
    async def run(self, fn: Callable[..., R], *args: Any) -> R:
        """Run ``fn(*args)`` where it may use :meth:`read` and :meth:`write`; return its result.

        Raises ``RuntimeError`` when the database is not open, and whatever ``fn`` raises.
        """

    @abstractmethod
    def read(self) -> AbstractContextManager[Connection]:
        """Inside :meth:`run`: a connection to read through, in a transaction if one is needed."""

    @abstractmethod
    def write(self) -> AbstractContextManager[Connection]:
        """Inside :meth:`run`: a write transaction, committed when the block ends (undone if
        it raises). The caller of :meth:`run` hears back only after the commit."""

    async def listen(
        self,
        on_work: Callable[[str], None],
        *,
        on_events: Callable[[str], None] | None = None,
    ) -> bool:
        """Subscribe to changes other processes commit (see ``SqlStore.listen``); False when
        the database cannot notify, which is the default."""
        return False

    def migrate(self) -> None:
        """Inside :meth:`run`: bring the schema to the newest migration."""
        with self.write() as conn:
            lock_for_migrations(conn)
            if schema_revision(conn) == NEWEST_MIGRATION:
                return
            # Imported only to migrate: Alembic adds 9 MB and a tenth of a second to a
            # process, which a database already migrated does without.
            from pausepoint.store.migrate import upgrade

            upgrade(conn)


# The newest migration in ``store/migrations`` (a test holds it to Alembic's head).
NEWEST_MIGRATION = "0008"


def schema_revision(conn: Connection) -> str | None:
    """The migration the database is at (None for a database never migrated)."""
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    revision = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    return None if revision is None else str(revision)
