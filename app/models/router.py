"""HTTP routes of the model registry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from app.auth.deps import AdminScope
from app.config import SettingsDep
from app.db import SessionDep
from app.deps import StoreDep
from app.errors import error_responses
from app.fields import IdPath
from app.models import deletion, service
from app.models.schemas import (
    NAME_PATTERN,
    AliasesPublic,
    AliasEventPublic,
    AliasPublic,
    AliasUpdate,
    BaseModelCreate,
    ModelPublic,
    ModelsPublic,
    ModelVersionPublic,
    model_public,
    version_public,
)

router = APIRouter(prefix="/models", tags=["models"])

AliasName = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")]
ModelNamePath = Annotated[str, Path(pattern=NAME_PATTERN)]


@router.post(
    "/base", status_code=status.HTTP_201_CREATED, response_model=ModelVersionPublic, dependencies=[AdminScope],
    responses=error_responses(400, 404, 409, 422),
)
def register_base_model(session: SessionDep, settings: SettingsDep, request: BaseModelCreate):
    """Register an encoder to fine-tune from: ``minilm-l6``, a folder under ``DALLMI_MODEL_ROOTS``, or a hub
    name when ``DALLMI_ALLOW_HUB=true`` (admin)."""
    version = service.register_base_model(
        session, name=request.name, source=request.source, roots=settings.model_roots, allow_hub=settings.allow_hub
    )
    return version_public(version)


@router.get("", response_model=ModelsPublic)
def list_models(session: SessionDep):
    """Every model with its versions and aliases."""
    rows = service.list_models(session)
    data = [model_public(m, service.aliases_of(session, model_id=m.id)) for m in rows]
    return ModelsPublic(data=data, count=len(data))


@router.get("/{name}", response_model=ModelPublic, responses=error_responses(404, 422))
def get_model(session: SessionDep, name: ModelNamePath):
    """One model with its versions."""
    model = service.get_model(session, name=name)
    return model_public(model, service.aliases_of(session, model_id=model.id))


@router.get("/{name}/versions/{version}", response_model=ModelVersionPublic, responses=error_responses(404, 422))
def get_version(session: SessionDep, name: ModelNamePath, version: IdPath):
    """A version: metrics, thresholds, labels, parent version, job and corpus hashes."""
    return version_public(service.get_version(session, name=name, version=version))


@router.delete(
    "/{name}/versions/{version}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[AdminScope],
    responses=error_responses(404, 409, 422),
)
def delete_version(session: SessionDep, store: StoreDep, name: ModelNamePath, version: IdPath):
    """Delete a version no alias points to and no queued or running job starts from, with its files (admin).
    A version that jobs, other versions or the alias history refer to stays readable with ``deleted_at``."""
    deletion.delete_version(session, store=store, name=name, version=version)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/{name}/aliases/{alias}", response_model=AliasPublic, dependencies=[AdminScope],
    responses=error_responses(400, 404, 409, 422),
)
def move_alias(session: SessionDep, name: ModelNamePath, alias: AliasName, request: AliasUpdate):
    """Point an alias (e.g. ``production``) at a version; the move is appended to the alias history."""
    row = service.move_alias(session, name=name, alias=alias, version=request.version)
    return AliasPublic(alias=row.alias, version=request.version, updated_at=row.updated_at)


@router.get("/{name}/aliases", response_model=AliasesPublic, responses=error_responses(404, 422))
def list_aliases(session: SessionDep, name: ModelNamePath):
    """Current aliases and the append-only history of their moves."""
    current, history = service.alias_history(session, name=name)
    return AliasesPublic(
        aliases=[AliasPublic(alias=a, version=v, updated_at=t) for a, v, t in current],
        history=[AliasEventPublic(alias=a, from_version=f, to_version=t, moved_at=m) for a, f, t, m in history],
    )
