"""Every ORM model, imported in one place so ``Base.metadata`` is complete (Alembic reads it)."""

from app.auth.orm import ApiKey
from app.corpora.orm import Corpus
from app.db import Base
from app.jobs.orm import Job, JobEpoch, WorkerBeat
from app.models.orm import AliasEvent, ModelAlias, ModelVersion, RegisteredModel

__all__ = [
    "AliasEvent", "ApiKey", "Base", "Corpus", "Job", "JobEpoch", "ModelAlias", "ModelVersion", "RegisteredModel",
    "WorkerBeat",
]
