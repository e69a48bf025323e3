"""The control-contract tests (test_control.py), run unchanged on PostgreSQL.

Those tests take their database from the ``db_path`` fixture; here it names a
fresh PostgreSQL database instead of a SQLite file.
"""

from __future__ import annotations

import pytest

from tests.integration.test_control import *  # noqa: F403 - every test, unchanged


@pytest.fixture
def db_path(postgres_url: str) -> str:
    return postgres_url
