"""The model registry: base models, versions with lineage, references and aliases."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.artifacts import ArtifactStore
from app.db import utcnow
from app.errors import ConflictError, InvalidInputError, NotFoundError
from app.fields import DB_INT_MAX
from app.models.orm import AliasEvent, ModelAlias, ModelVersion, RegisteredModel
from app.models.policy import classify_source
from app.models.schemas import NAME_PATTERN
from dallmi_core import checkpoint_sha256, load_checkpoint_meta

if TYPE_CHECKING:
    from app.jobs.orm import Job

BASE, TRAINED = "base", "trained"
_REF = re.compile(r"^(?P<name>[^:@]+)(?::(?P<version>[0-9]{1,12})|@(?P<alias>[A-Za-z0-9._-]{1,100}))?$")


def register_base_model(
    session: Session, *, name: str, source: str, roots: Sequence[Path] = (), allow_hub: bool = False
) -> ModelVersion:
    """Register an encoder (built-in, local folder or hub name) as version 1 of a base model.

    Args:
        roots: folders a local model must be inside (``DALLMI_MODEL_ROOTS``).
        allow_hub: whether hub names are allowed (``DALLMI_ALLOW_HUB``).

    Raises:
        InvalidInputError: a source the policy refuses (see ``app.models.policy``).
        ConflictError: a model of this name exists.
    """
    stored, allow_hub = classify_source(source, roots=roots, allow_hub=allow_hub)
    if session.scalar(select(RegisteredModel.id).where(RegisteredModel.name == name)) is not None:
        raise ConflictError(f"model {name} already exists", loc=("body", "name"), type="already_exists")
    model = RegisteredModel(name=name, kind=BASE)
    version = ModelVersion(model=model, version=1, source=stored, allow_hub=allow_hub)
    session.add_all([model, version])
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise ConflictError(f"model {name} already exists", loc=("body", "name"), type="already_exists") from exc
    return version


def ensure_builtin_base_model(session: Session, *, name: str) -> None:
    """Register the built-in base model under its own name unless a model of that name exists."""
    if session.scalar(select(RegisteredModel.id).where(RegisteredModel.name == name)) is None:
        try:
            register_base_model(session, name=name, source=name)
        except ConflictError:
            pass  # another process registered it at the same time


def get_model(session: Session, *, name: str, loc: tuple[str, ...] = ("path", "name")) -> RegisteredModel:
    """The model of this name, or ``NotFoundError``."""
    model = session.scalar(select(RegisteredModel).where(RegisteredModel.name == name))
    if model is None:
        raise NotFoundError(f"model {name} does not exist", loc=loc)
    return model


def list_models(session: Session) -> list[RegisteredModel]:
    """All models by name."""
    return list(session.scalars(select(RegisteredModel).order_by(RegisteredModel.name)).all())


def get_version(session: Session, *, name: str, version: int, loc: tuple[str, ...] = ("path",)) -> ModelVersion:
    """Version ``version`` of model ``name``, or ``NotFoundError``."""
    model = get_model(session, name=name, loc=loc)
    row = session.scalar(select(ModelVersion).where(ModelVersion.model_id == model.id, ModelVersion.version == version))
    if row is None:
        raise NotFoundError(f"model {name} has no version {version}", loc=loc)
    return row


def live_version(version: ModelVersion, *, loc: tuple[str, ...]) -> ModelVersion:
    """``version`` itself, or ``NotFoundError`` when it was deleted (its row stays for lineage)."""
    if version.deleted_at is not None:
        raise NotFoundError(f"model version {version.ref} was deleted", loc=loc, type="deleted")
    return version


def resolve_ref(session: Session, *, ref: str, loc: tuple[str, ...]) -> ModelVersion:
    """Resolve ``NAME``, ``NAME:VERSION`` or ``NAME@ALIAS``; a bare name means the latest version."""
    match = _REF.match(ref.strip())
    if match is None or not re.match(NAME_PATTERN, match["name"]):
        raise InvalidInputError(f"{ref!r} is not NAME, NAME:VERSION or NAME@ALIAS", loc=loc)
    name = match["name"]
    if match["version"]:
        if not 1 <= int(match["version"]) <= DB_INT_MAX:
            raise NotFoundError(f"model {name} has no version {int(match['version'])}", loc=loc)
        return live_version(get_version(session, name=name, version=int(match["version"]), loc=loc), loc=loc)
    model = get_model(session, name=name, loc=loc)
    if match["alias"]:
        alias = _alias_row(session, model_id=model.id, alias=match["alias"])
        if alias is None:
            raise NotFoundError(f"model {name} has no alias {match['alias']}", loc=loc)
        return session.get_one(ModelVersion, alias.version_id)
    live = [v for v in model.versions if v.deleted_at is None]
    if not live:
        raise NotFoundError(f"model {name} has no version yet", loc=loc)
    return live[-1]


def _alias_row(session: Session, *, model_id: int, alias: str) -> ModelAlias | None:
    return session.scalar(select(ModelAlias).where(ModelAlias.model_id == model_id, ModelAlias.alias == alias))


def aliases_of(session: Session, *, model_id: int) -> dict[str, int]:
    """Alias -> version number for one model."""
    rows = session.execute(
        select(ModelAlias.alias, ModelVersion.version)
        .join(ModelVersion, ModelVersion.id == ModelAlias.version_id)
        .where(ModelAlias.model_id == model_id)
        .order_by(ModelAlias.alias)
    ).all()
    return {alias: version for alias, version in rows}


def move_alias(session: Session, *, name: str, alias: str, version: int) -> ModelAlias:
    """Point ``alias`` at a version and append the move to the alias history."""
    loc = ("body", "version")
    target = live_version(get_version(session, name=name, version=version, loc=loc), loc=loc)
    row = _alias_row(session, model_id=target.model_id, alias=alias)
    previous = row.version_id if row is not None else None
    if row is None:
        row = ModelAlias(model_id=target.model_id, alias=alias, version_id=target.id)
        session.add(row)
    else:
        row.version_id = target.id
        row.updated_at = utcnow()
    session.add(AliasEvent(model_id=target.model_id, alias=alias, from_version_id=previous, to_version_id=target.id))
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise ConflictError(f"alias {alias} was moved concurrently; retry", loc=("path", "alias")) from exc
    session.refresh(row)
    return row


def alias_history(
    session: Session, *, name: str
) -> tuple[list[tuple[str, int, datetime]], list[tuple[str, int | None, int, datetime]]]:
    """(current aliases as (alias, version, updated_at), history as (alias, from, to, moved_at))."""
    model = get_model(session, name=name)
    numbers = {v.id: v.version for v in model.versions}
    current = session.scalars(
        select(ModelAlias).where(ModelAlias.model_id == model.id).order_by(ModelAlias.alias)
    ).all()
    events = session.scalars(select(AliasEvent).where(AliasEvent.model_id == model.id).order_by(AliasEvent.id)).all()
    return (
        [(a.alias, numbers[a.version_id], a.updated_at) for a in current],
        [(e.alias, numbers.get(e.from_version_id or -1), numbers[e.to_version_id], e.moved_at) for e in events],
    )


def _trained_model(session: Session, name: str) -> RegisteredModel:
    model = session.scalar(select(RegisteredModel).where(RegisteredModel.name == name).with_for_update())
    if model is not None:
        return model
    try:
        with session.begin_nested():
            model = RegisteredModel(name=name, kind=TRAINED)
            session.add(model)
    except IntegrityError:  # created concurrently by another worker
        model = session.scalars(select(RegisteredModel).where(RegisteredModel.name == name)).one()
    return model


def add_trained_version(session: Session, *, store: ArtifactStore, job: Job, checkpoint: Path) -> ModelVersion:
    """Copy a finished checkpoint into the registry and add its version row (the caller commits).

    The folder is complete and its sha256 recorded before the row exists; the model row is locked so
    concurrent jobs get distinct version numbers.
    """
    model = _trained_model(session, job.name)
    number = (session.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.model_id == model.id)) or 0) + 1
    relative = store.version_path(model.name, number)
    target = store.publish_dir(checkpoint, relative)
    meta = load_checkpoint_meta(target)
    version = ModelVersion(
        model=model,
        version=number,
        source=str(target),
        path=relative,
        labels=list(meta["labels"]),
        thresholds=[float(t) for t in meta["thresholds"]],
        metrics=meta.get("metrics") or {},
        history=meta.get("history") or [],
        config=meta.get("config") or {},
        method=meta.get("method"),
        checksums=checkpoint_sha256(target),
        corpus_hash=meta.get("corpus_hash"),
        eval_corpus_hash=meta.get("eval_corpus_hash"),
        parent_version_id=job.base_version_id,
        job_id=job.id,
    )
    session.add(version)
    session.flush()
    return version
