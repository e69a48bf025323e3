"""The database's health for ``pausepoint doctor``: the store's checks, for either dialect."""

from __future__ import annotations

import asyncio

from pausepoint.config import Settings
from pausepoint.errors import InvalidInput
from pausepoint.store.health import HealthReport, check_postgresql, check_sqlite
from pausepoint.store.sql import sqlite_path

__all__ = ["HealthReport", "check_database"]


async def check_database(settings: Settings, *, full: bool = False) -> HealthReport:
    """Check the database of ``settings`` (read-only, safe while servers run on it)."""
    path = sqlite_path(settings.db)
    if path is not None:
        if str(path) in ("", ":memory:"):
            raise InvalidInput("--db: an in-memory database has nothing to check")
        # The checks block (an integrity check reads every page): off the event loop.
        return await asyncio.to_thread(check_sqlite, path, full=full)
    return await check_postgresql(settings.db)
