"""Pydantic schemas of the model registry API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
ModelName = Annotated[str, Field(pattern=NAME_PATTERN, description="letters, digits, '.', '_', '-'")]


class BaseModelCreate(BaseModel):
    """Register an encoder to fine-tune from."""

    name: ModelName
    source: str = Field(
        min_length=1,
        max_length=1000,
        description="'minilm-l6', a local Hugging Face model folder, or a hub name such as bert-base-uncased",
    )


class ModelVersionPublic(BaseModel):
    """One version with its lineage and training record."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    version: int
    ref: str
    kind: str
    source: str
    labels: list[str] | None
    thresholds: list[float] | None
    metrics: dict
    history: list[dict]
    config: dict
    method: str | None
    parent: str | None = Field(description="the parent version as name:version (lineage)")
    parent_version_id: int | None
    job_id: int | None
    corpus_hash: str | None
    eval_corpus_hash: str | None
    checksums: dict[str, str] | None
    created_at: datetime


class ModelVersionSummary(BaseModel):
    """A version in a listing."""

    version: int
    ref: str
    parent: str | None
    job_id: int | None
    metrics: dict
    created_at: datetime


class ModelPublic(BaseModel):
    """A model name with its versions and aliases."""

    name: str
    kind: str
    created_at: datetime
    versions: list[ModelVersionSummary]
    aliases: dict[str, int]


class ModelsPublic(BaseModel):
    """All models."""

    data: list[ModelPublic]
    count: int


class AliasUpdate(BaseModel):
    """Point an alias at a version."""

    version: int = Field(ge=1)


class AliasPublic(BaseModel):
    """Where an alias points now."""

    alias: str
    version: int
    updated_at: datetime


class AliasEventPublic(BaseModel):
    """One move of an alias (append-only history)."""

    alias: str
    from_version: int | None
    to_version: int
    moved_at: datetime


class AliasesPublic(BaseModel):
    """Current aliases of a model and the history of their moves, oldest first."""

    aliases: list[AliasPublic]
    history: list[AliasEventPublic]


def version_public(version) -> ModelVersionPublic:
    """The public form of a ``ModelVersion`` row."""
    return ModelVersionPublic(
        id=version.id,
        name=version.model.name,
        version=version.version,
        ref=version.ref,
        kind=version.model.kind,
        source=version.source,
        labels=version.labels,
        thresholds=version.thresholds,
        metrics=version.metrics,
        history=version.history,
        config=version.config,
        method=version.method,
        parent=version.parent.ref if version.parent is not None else None,
        parent_version_id=version.parent_version_id,
        job_id=version.job_id,
        corpus_hash=version.corpus_hash,
        eval_corpus_hash=version.eval_corpus_hash,
        checksums=version.checksums,
        created_at=version.created_at,
    )


def model_public(model, aliases: dict[str, int]) -> ModelPublic:
    """The public form of a ``RegisteredModel`` row with its aliases (alias -> version number)."""
    return ModelPublic(
        name=model.name,
        kind=model.kind,
        created_at=model.created_at,
        aliases=aliases,
        versions=[
            ModelVersionSummary(
                version=v.version,
                ref=v.ref,
                parent=v.parent.ref if v.parent is not None else None,
                job_id=v.job_id,
                metrics=v.metrics,
                created_at=v.created_at,
            )
            for v in model.versions
        ],
    )
