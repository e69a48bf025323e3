"""The database's health, as ``pausepoint doctor`` reports it.

Every check reads only, through a connection of its own (but for a small file
written and removed beside a SQLite database, to learn whether its file system
takes writes), so it can run while servers write the same database: SQLite's
integrity check, the size of its write-ahead log and the free space on its file
system; for both dialects the schema's migration against the newest this build
knows, executions whose lease ran out long ago with nobody taking them over, and
idempotency reservations whose holder never answered.

A finding is ``ok``, a ``warning`` (worth a look, nothing is wrong yet) or a
``problem`` (something does not work, or will not for long).
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pausepoint.store.access import ABANDONED_CLAIM_SECONDS
from pausepoint.store.checkpoints import TERMINAL
from pausepoint.store.database import NEWEST_MIGRATION
from pausepoint.store.sqlite import write_probe

OK = "ok"
WARNING = "warning"
PROBLEM = "problem"

# A lease that ran out this long ago and was not taken over: no runtime looks at it.
STUCK_LEASE_SECONDS = 300.0
# Less free space than this and the next checkpoints may not fit: a problem.
CRITICAL_FREE_BYTES = 1024 * 1024
# Less than this share of the file system free: a warning.
LOW_FREE_SHARE = 0.05
# A write-ahead log past this size is not being copied back (a long reader, a full disk).
LARGE_WAL_BYTES = 256 * 1024 * 1024

_NOT_ENDED = "status NOT IN ({})".format(", ".join(f"'{status}'" for status in sorted(TERMINAL)))
_STUCK_LEASES = f"""
SELECT count(*) FROM executions
WHERE lease_owner > '' AND lease_expires_at < ? AND {_NOT_ENDED}
"""
_ABANDONED_RESERVATIONS = (
    "SELECT count(*) FROM idempotency WHERE status_code = 0 AND created_at < ?"
)


@dataclass(frozen=True)
class Finding:
    """One check's outcome."""

    check: str
    status: str
    detail: str
    value: Any = None


@dataclass
class HealthReport:
    database: str
    dialect: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return all(finding.status != PROBLEM for finding in self.findings)

    def add(self, check: str, status: str, detail: str, value: Any = None) -> None:
        self.findings.append(Finding(check, status, detail, value))

    def as_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "dialect": self.dialect,
            "healthy": self.healthy,
            "findings": [asdict(finding) for finding in self.findings],
        }


def check_sqlite(path: Path, *, full: bool = False, now: float | None = None) -> HealthReport:
    """The health of the SQLite file ``path``; ``full`` runs ``integrity_check`` (reads
    every page and index) instead of the quicker ``quick_check``."""
    report = HealthReport(str(path), "sqlite")
    if not path.is_file():
        report.add("database", PROBLEM, f"{path}: no such file")
        return report
    refused = _check_free_space(report, path)
    wal = path.with_name(path.name + "-wal")
    wal_bytes = wal.stat().st_size if wal.exists() else 0
    if wal_bytes > LARGE_WAL_BYTES:
        detail = (
            f"write-ahead log {_size(wal_bytes)}: not copied back (a long reader, a full disk?)"
        )
        report.add("wal_size", WARNING, detail, wal_bytes)
    else:
        report.add("wal_size", OK, f"write-ahead log {_size(wal_bytes)}", wal_bytes)
    # Read-only: the doctor never writes, and works on a disk that is full. A WAL
    # database on a read-only file system opens only as immutable when its shared
    # memory file is gone (nobody can be writing it there anyway).
    options = ["mode=ro"]
    shm = path.with_name(path.name + "-shm")
    if refused == "the file system is read-only" and not shm.exists():
        options.append("immutable=1")  # ignores a -wal: there is none after a clean close
    try:
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?{'&'.join(options)}", uri=True, timeout=5
        )
    except sqlite3.Error as error:
        report.add("database", PROBLEM, f"cannot open {path}: {error}")
        return report
    try:
        _check_sqlite_pages(report, conn, full=full)
        _check_schema(report, _sqlite_revision(conn))
        _check_work(report, lambda sql, arg: conn.execute(sql, (arg,)).fetchone()[0], now)
    except sqlite3.Error as error:
        report.add("database", PROBLEM, f"cannot read {path}: {error}")
    finally:
        conn.close()
    return report


def _check_free_space(report: HealthReport, path: Path) -> str | None:
    """Free space, and whether the file system takes a write; why not, if it does not."""
    usage = shutil.disk_usage(path.parent)
    share = usage.free / usage.total if usage.total else 0.0
    detail = f"{_size(usage.free)} free of {_size(usage.total)} on {path.parent}"
    if usage.free < CRITICAL_FREE_BYTES:
        report.add("free_space", PROBLEM, f"{detail}: disk full, writes will fail", usage.free)
    elif share < LOW_FREE_SHARE:
        report.add("free_space", WARNING, f"{detail}: less than 5% left", usage.free)
    else:
        report.add("free_space", OK, detail, usage.free)
    # A file system the kernel made read-only after an error may still say "rw" to
    # access(): writing a small file beside the database is what tells.
    refused = write_probe(path)
    if refused is None:
        report.add("writable", OK, f"{path.parent} can be written")
    else:
        report.add("writable", PROBLEM, f"{path.parent} cannot be written: {refused}")
    return refused


def _check_sqlite_pages(report: HealthReport, conn: sqlite3.Connection, *, full: bool) -> None:
    pragma = "integrity_check" if full else "quick_check"
    rows = [str(row[0]) for row in conn.execute(f"PRAGMA {pragma}(20)")]
    if rows == ["ok"]:
        report.add("integrity", OK, f"{pragma}: ok")
    else:
        report.add("integrity", PROBLEM, f"{pragma}: " + "; ".join(rows), rows)
    (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    (free_pages,) = conn.execute("PRAGMA freelist_count").fetchone()
    report.add(
        "pages",
        OK,
        f"{pages} pages of {page_size} bytes ({_size(pages * page_size)}), {free_pages} free",
        {"page_size": page_size, "page_count": pages, "freelist_count": free_pages},
    )


def _sqlite_revision(conn: sqlite3.Connection) -> str | None:
    found = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
    ).fetchone()
    if found is None:
        return None
    row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return None if row is None else str(row[0])


def _check_schema(report: HealthReport, revision: str | None) -> None:
    if revision == NEWEST_MIGRATION:
        report.add("schema", OK, f"schema at migration {revision} (the newest)", revision)
    elif revision is None:
        report.add("schema", PROBLEM, "not a pausepoint database (no migration recorded)")
    elif revision < NEWEST_MIGRATION:
        report.add(
            "schema",
            WARNING,
            f"schema at migration {revision}, this build's newest is {NEWEST_MIGRATION}: "
            "the next server started on it migrates it",
            revision,
        )
    else:
        report.add(
            "schema",
            PROBLEM,
            f"schema at migration {revision}, newer than this build's {NEWEST_MIGRATION}: "
            "upgrade pausepoint",
            revision,
        )


def _check_work(report: HealthReport, count: Any, now: float | None) -> None:
    """Stuck leases and abandoned reservations; ``count(sql, arg)`` runs a ``count(*)``."""
    now = time.time() if now is None else now
    stuck = int(count(_STUCK_LEASES, now - STUCK_LEASE_SECONDS))
    if stuck:
        report.add(
            "leases",
            PROBLEM,
            f"{stuck} unfinished executions hold a lease that ran out over "
            f"{STUCK_LEASE_SECONDS:.0f} s ago and nobody took them over: is a server or "
            "worker running on this database?",
            stuck,
        )
    else:
        report.add("leases", OK, "no stuck leases", 0)
    abandoned = int(count(_ABANDONED_RESERVATIONS, now - ABANDONED_CLAIM_SECONDS))
    if abandoned:
        report.add(
            "idempotency",
            WARNING,
            f"{abandoned} Idempotency-Key reservations unanswered for over "
            f"{ABANDONED_CLAIM_SECONDS:.0f} s (their process died; a retry takes them over)",
            abandoned,
        )
    else:
        report.add("idempotency", OK, "no abandoned Idempotency-Key reservations", 0)


async def check_postgresql(url: str, *, now: float | None = None) -> HealthReport:
    """The health of the PostgreSQL database at ``url``: reachable, its schema, stuck
    leases and abandoned reservations, its size."""
    import asyncpg  # only for PostgreSQL

    dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    report = HealthReport(_without_password(dsn), "postgresql")
    try:
        conn = await asyncpg.connect(dsn, timeout=10)
    except Exception as error:  # refused, unknown host, bad password: all say "cannot reach"
        report.add("connection", PROBLEM, f"cannot connect: {error}")
        return report
    try:
        version = await conn.fetchval("SHOW server_version")
        report.add("connection", OK, f"connected (PostgreSQL {version})", version)
        has_version = await conn.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL")
        revision = (
            await conn.fetchval("SELECT version_num FROM alembic_version") if has_version else None
        )
        _check_schema(report, None if revision is None else str(revision))
        if revision is not None:
            counts: dict[str, int] = {}
            for sql in (_STUCK_LEASES, _ABANDONED_RESERVATIONS):
                cutoff = (time.time() if now is None else now) - (
                    STUCK_LEASE_SECONDS if sql is _STUCK_LEASES else ABANDONED_CLAIM_SECONDS
                )
                counts[sql] = int(await conn.fetchval(sql.replace("?", "$1"), cutoff))
            _check_work(report, lambda sql, _arg: counts[sql], now)
        size = int(await conn.fetchval("SELECT pg_database_size(current_database())"))
        report.add("size", OK, f"database size {_size(size)}", size)
    except Exception as error:  # the connection dropped midway, a permission missing
        report.add("database", PROBLEM, f"cannot read: {error}")
    finally:
        await conn.close()
    return report


def _without_password(dsn: str) -> str:
    scheme, sep, rest = dsn.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return dsn
    return f"{scheme}{sep}{credentials.split(':', 1)[0]}:***@{host}"


def _size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"
