"""Shared FastAPI dependencies besides settings and session."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from app.artifacts import ArtifactStore
from app.config import SettingsDep


def get_store(settings: SettingsDep) -> ArtifactStore:
    """The artifact store under the configured folder."""
    return ArtifactStore(settings.artifacts_dir)


StoreDep = Annotated[ArtifactStore, Depends(get_store)]
