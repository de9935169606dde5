"""Prestart step: ``python -m app.migrate`` applies the migrations and registers the built-in base model."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from app.config import Settings, get_settings
from app.db import make_sessionmaker
from app.models.service import ensure_builtin_base_model

ALEMBIC_INI = Path(__file__).resolve().parents[1] / "alembic.ini"


def alembic_config(database_url: str) -> Config:
    """Alembic configuration for ``database_url`` (logging left to the caller)."""
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["configure_logging"] = False
    return config


def prestart(settings: Settings) -> None:
    """Create the local folders, run ``alembic upgrade head``, register the built-in base model."""
    settings.artifacts_dir.mkdir(parents=True, exist_ok=True)
    if settings.database_url.startswith("sqlite:///"):
        Path(settings.database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(settings.database_url), "head")
    with make_sessionmaker(settings.database_url)() as session:
        ensure_builtin_base_model(session, name=settings.builtin_base_model)


if __name__ == "__main__":
    prestart(get_settings())
