"""Bring a database schema to the newest Alembic revision, from code."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from webapp.resources import ALEMBIC_INI, MIGRATIONS


def alembic_config(database_url: str) -> Config:
    """An Alembic config for `database_url` that works from any working directory."""
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Run `alembic upgrade` on `database_url` (blocking: call before serving)."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)
