"""Kestra's PurgeLogs on temporal+postgres: the task runs in a worker's activity and
purges through the shared database. (The filter cases move the engine's clock, which
Temporal's own clock does not follow: they run on the embedded runtime.)"""

from __future__ import annotations

from tests.integration.test_kestra_purge_logs import (
    test_purge_logs_never_reaches_another_organization,
    test_purge_logs_without_arguments_purges_every_line_up_to_its_end_date,
)

__all__ = [
    "test_purge_logs_never_reaches_another_organization",
    "test_purge_logs_without_arguments_purges_every_line_up_to_its_end_date",
]
