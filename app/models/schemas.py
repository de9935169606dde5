"""Pydantic schemas of the model registry API."""

from __future__ import annotations

from typing import Annotated

from pydantic import AliasPath, BaseModel, ConfigDict, Field

from app.fields import DbId, UtcDatetime

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
ModelName = Annotated[str, Field(pattern=NAME_PATTERN, description="letters, digits, '.', '_', '-'")]
REF_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}(:[0-9]{1,9}|@[A-Za-z0-9._-]{1,100})?$"
"""``NAME``, ``NAME:VERSION`` or ``NAME@ALIAS``."""
ModelRef = Annotated[str, Field(pattern=REF_PATTERN, description="NAME, NAME:VERSION or NAME@ALIAS")]


class BaseModelCreate(BaseModel):
    """Register an encoder to fine-tune from."""

    name: ModelName
    source: str = Field(
        min_length=1,
        max_length=1000,
        description="'minilm-l6', a Hugging Face model folder under DALLMI_MODEL_ROOTS, or a hub name such as "
        "bert-base-uncased when DALLMI_ALLOW_HUB=true",
    )


class ModelVersionPublic(BaseModel):
    """One version with its lineage and training record."""

    model_config = ConfigDict(from_attributes=True, populate_by_name=True)

    id: int
    name: str = Field(validation_alias=AliasPath("model", "name"))
    version: int
    ref: str
    kind: str = Field(validation_alias=AliasPath("model", "kind"))
    source: str
    labels: list[str] | None
    thresholds: list[float] | None
    metrics: dict
    history: list[dict]
    config: dict
    method: str | None
    parent: str | None = Field(
        default=None,
        validation_alias=AliasPath("parent", "ref"),
        description="the parent version as name:version (lineage)",
    )
    parent_version_id: int | None
    job_id: int | None
    corpus_hash: str | None
    eval_corpus_hash: str | None
    checksums: dict[str, str] | None
    created_at: UtcDatetime
    deleted_at: UtcDatetime | None = Field(
        default=None, description="set when the version was deleted (kept for lineage)"
    )


class ModelVersionSummary(BaseModel):
    """A version in a listing."""

    model_config = ConfigDict(from_attributes=True, populate_by_name=True)

    version: int
    ref: str
    parent: str | None = Field(default=None, validation_alias=AliasPath("parent", "ref"))
    job_id: int | None
    metrics: dict
    created_at: UtcDatetime
    deleted_at: UtcDatetime | None = None


class ModelPublic(BaseModel):
    """A model name with its versions and aliases."""

    name: str
    kind: str
    created_at: UtcDatetime
    versions: list[ModelVersionSummary]
    aliases: dict[str, int]


class ModelsPublic(BaseModel):
    """All models."""

    data: list[ModelPublic]
    count: int


class AliasUpdate(BaseModel):
    """Point an alias at a version."""

    version: DbId


class AliasPublic(BaseModel):
    """Where an alias points now."""

    alias: str
    version: int
    updated_at: UtcDatetime


class AliasEventPublic(BaseModel):
    """One move of an alias (append-only history)."""

    alias: str
    from_version: int | None
    to_version: int
    moved_at: UtcDatetime


class AliasesPublic(BaseModel):
    """Current aliases of a model and the history of their moves, oldest first."""

    aliases: list[AliasPublic]
    history: list[AliasEventPublic]


def version_public(version) -> ModelVersionPublic:
    """The public form of a ``ModelVersion`` row (its model's name and kind, its parent's ref)."""
    return ModelVersionPublic.model_validate(version)


def model_public(model, aliases: dict[str, int]) -> ModelPublic:
    """The public form of a ``RegisteredModel`` row with its aliases (alias -> version number)."""
    versions = [ModelVersionSummary.model_validate(v) for v in model.versions]
    return ModelPublic(
        name=model.name, kind=model.kind, created_at=model.created_at, aliases=aliases, versions=versions
    )
