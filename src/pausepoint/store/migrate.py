"""Apply the Alembic migrations in ``store/migrations`` to a connection."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

MIGRATIONS = Path(__file__).with_name("migrations")


@cache
def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def upgrade(conn: Connection) -> None:
    """Bring the schema to the newest revision (a no-op when it is already there)."""
    if current_revision(conn) == head_revision():
        return
    config = _config()
    config.attributes["connection"] = conn
    try:
        command.upgrade(config, "head")
    finally:
        config.attributes.pop("connection", None)
