"""Deleting a model version and its files.

A version that an alias points to, or that a queued or running job starts from, is refused (409). Otherwise
its files in the artifact folder go (never a base model's own folder under the model roots). Its row goes
too when nothing refers to it (typically a base model never trained from; the model name goes with its
last version); when jobs, child versions or the alias history refer to it, the row stays as a tombstone
with ``deleted_at`` set, so lineage stays readable, and it can no longer be predicted with, trained from
or aliased.
"""

from __future__ import annotations

import shutil

from sqlalchemy import delete, exists, func, or_, select
from sqlalchemy.orm import Session

from app.artifacts import ArtifactStore
from app.db import utcnow
from app.errors import ConflictError, NotFoundError
from app.jobs.orm import ACTIVE_STATUSES, Job
from app.models.orm import AliasEvent, ModelAlias, ModelVersion, RegisteredModel
from app.models.service import get_version

_LOC = ("path", "version")


def _check_unused(session: Session, version: ModelVersion) -> None:
    aliases = session.scalars(select(ModelAlias.alias).where(ModelAlias.version_id == version.id)).all()
    if aliases:
        raise ConflictError(
            f"{version.ref} is the target of alias(es) {', '.join(sorted(aliases))}; move them first",
            loc=_LOC,
            type="in_use",
        )
    jobs = session.scalars(
        select(Job.id).where(Job.base_version_id == version.id, Job.status.in_(ACTIVE_STATUSES)).order_by(Job.id)
    ).all()
    if jobs:
        raise ConflictError(
            f"queued or running job(s) {', '.join(map(str, jobs))} start from {version.ref}; wait or cancel them",
            loc=_LOC,
            type="in_use",
        )


def _referenced(session: Session, version_id: int) -> bool:
    """Whether jobs, child versions or alias history rows refer to the version."""
    return bool(
        session.scalar(
            select(
                exists().where(or_(Job.base_version_id == version_id, Job.result_version_id == version_id))
                | exists().where(ModelVersion.parent_version_id == version_id)
                | exists().where(or_(AliasEvent.from_version_id == version_id, AliasEvent.to_version_id == version_id))
            )
        )
    )


def delete_version(session: Session, *, store: ArtifactStore, name: str, version: int) -> bool:
    """Delete version ``version`` of model ``name`` and its files in the artifact folder.

    Returns:
        True when the row was removed, False when it was kept as a tombstone for lineage.

    Raises:
        NotFoundError: no such version, or it was already deleted.
        ConflictError: an alias points to it, or a queued or running job starts from it.
    """
    row = get_version(session, name=name, version=version)
    session.execute(select(ModelVersion.id).where(ModelVersion.id == row.id).with_for_update())  # one deleter
    session.refresh(row)
    if row.deleted_at is not None:
        raise NotFoundError(f"model version {row.ref} was already deleted", loc=_LOC, type="deleted")
    _check_unused(session, row)
    path, job_id, model_id = row.path, row.job_id, row.model_id
    removed = not _referenced(session, row.id)
    if removed:
        session.execute(delete(ModelVersion).where(ModelVersion.id == row.id))
        others = session.scalar(select(func.count()).select_from(ModelVersion).where(ModelVersion.model_id == model_id))
        if not others:
            session.execute(delete(RegisteredModel).where(RegisteredModel.id == model_id))
    else:
        row.deleted_at = utcnow()
    session.commit()
    session.expire_all()
    if path is not None:  # files only after the commit: a failed commit leaves the version whole
        store.remove(path)
    if job_id is not None:
        shutil.rmtree(store.job_dir(job_id), ignore_errors=True)
    return removed
