"""Waiting out a database that cannot be reached, the same way in every loop.

A restart of PostgreSQL, a killed connection or a full disk makes store calls
raise :class:`~pausepoint.errors.StoreUnavailable` for a while. A loop that
meets it must keep its process and its work: it waits (doubling, up to a
ceiling) and tries again. It logs once when the database goes and once when it
is back, not once per attempt, so an outage of a minute is two lines per loop.
"""

from __future__ import annotations

import asyncio
import logging

from pausepoint.errors import StoreUnavailable

log = logging.getLogger("pausepoint.runtime")

# The first wait after a failure, and the ceiling the waits double up to.
FIRST_WAIT_SECONDS = 0.1
CEILING_SECONDS = 2.0


class StoreBackoff:
    """Back-off for one loop (or one checkpoint) while the store is unavailable."""

    def __init__(
        self, doing: str, *, first: float = FIRST_WAIT_SECONDS, ceiling: float = CEILING_SECONDS
    ) -> None:
        self.doing = doing
        self.first = first
        self.ceiling = ceiling
        self.failures = 0
        self._delay = first

    def note(self, error: StoreUnavailable) -> float:
        """Count a failure (logged only for the first of an outage); the wait before
        the next attempt."""
        if self.failures == 0:
            log.warning("%s: %s; retrying until it is back", self.doing, error.message)
        self.failures += 1
        delay = self._delay
        self._delay = min(self._delay * 2, self.ceiling)
        return delay

    async def wait(self, error: StoreUnavailable) -> None:
        """Count a failure and wait before the next attempt."""
        await asyncio.sleep(self.note(error))

    def recovered(self) -> None:
        """An attempt succeeded: log the end of the outage, if there was one."""
        if self.failures:
            log.warning(
                "%s: the database is back after %d failed attempts", self.doing, self.failures
            )
        self.failures = 0
        self._delay = self.first
