"""The example-flow tests (test_examples.py), run unchanged on PostgreSQL.

Those tests take their database from the ``db_path`` fixture; here it names a
fresh PostgreSQL database instead of a SQLite file.
"""

from __future__ import annotations

import pytest

from tests.integration.test_examples import *  # noqa: F403 - every test and its fixtures


@pytest.fixture
def db_path(postgres_url: str) -> str:
    return postgres_url
