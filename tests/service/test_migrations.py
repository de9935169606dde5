"""Alembic migrations: upgrade and downgrade on PostgreSQL and SQLite, and agreement with the ORM."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from app.db import get_engine
from app.migrate import alembic_config
from app.orm import Base

from .helpers import pg_database

TABLES = {
    "corpora", "models", "model_versions", "model_aliases", "alias_events", "jobs", "job_epochs", "api_keys", "workers",
}


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


@pytest.fixture(params=["postgresql", "sqlite"])
def empty_database(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'm.db'}"
        return
    yield from pg_database()


def test_upgrade_downgrade_upgrade(empty_database):
    config = alembic_config(empty_database)
    command.upgrade(config, "head")
    assert _tables(empty_database) == TABLES
    command.downgrade(config, "base")
    assert _tables(empty_database) == set()
    command.upgrade(config, "head")
    assert _tables(empty_database) == TABLES
    get_engine(empty_database).dispose()


def test_migrations_match_the_orm(database_url):
    with get_engine(database_url).connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []
