"""The crash-recovery tests (test_recovery.py), run unchanged on PostgreSQL.

Those tests take their database from the ``db_path`` fixture; here it names a
fresh PostgreSQL database instead of a SQLite file.
"""

from __future__ import annotations

import pytest

from tests.integration.test_recovery import *  # noqa: F403 - every test, unchanged
from tests.integration.test_recovery import _clear_runs  # noqa: F401 - autouse, not starred


@pytest.fixture
def db_path(postgres_url: str) -> str:
    return postgres_url
