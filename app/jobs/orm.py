"""ORM models of training jobs and their per-epoch metrics."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, utcnow

if TYPE_CHECKING:
    from app.corpora.orm import Corpus
    from app.models.orm import ModelVersion

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
ACTIVE_STATUSES = (QUEUED, RUNNING)
FINAL_STATUSES = (SUCCEEDED, FAILED, CANCELLED)


class Job(Base):
    """A fine-tuning (``kind="finetune"``) or adaptation (``kind="adapt"``) run."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=QUEUED, index=True)
    name: Mapped[str] = mapped_column(String(200))
    """Name of the model the resulting version is registered under."""
    method: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict] = mapped_column(default=dict)
    label_map: Mapped[dict | None]
    corpus_id: Mapped[int | None] = mapped_column(ForeignKey("corpora.id", ondelete="SET NULL"), index=True)
    eval_corpus_id: Mapped[int | None] = mapped_column(ForeignKey("corpora.id", ondelete="SET NULL"))
    base_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    result_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    epoch: Mapped[int] = mapped_column(default=0)
    epochs: Mapped[int] = mapped_column(default=0)
    step: Mapped[int] = mapped_column(default=0)
    total_steps: Mapped[int] = mapped_column(default=0)
    loss: Mapped[float | None]
    eta_s: Mapped[float | None]
    error: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    attempts: Mapped[int] = mapped_column(default=0)
    """Runs started (claims by a worker); a warm shutdown hands its run back without spending one."""
    worker: Mapped[str | None] = mapped_column(String(200))
    """Id of the worker process that holds the running job (with ``attempts``: its claim)."""
    heartbeat_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    corpus: Mapped[Corpus | None] = relationship(foreign_keys=[corpus_id])
    eval_corpus: Mapped[Corpus | None] = relationship(foreign_keys=[eval_corpus_id])
    base_version: Mapped[ModelVersion] = relationship(foreign_keys=[base_version_id])
    result_version: Mapped[ModelVersion | None] = relationship(foreign_keys=[result_version_id])
    epoch_metrics: Mapped[list[JobEpoch]] = relationship(
        order_by="JobEpoch.epoch", lazy="selectin", cascade="all, delete-orphan"
    )


class JobEpoch(Base):
    """Metrics of one finished epoch of a job, written as it happens."""

    __tablename__ = "job_epochs"
    __table_args__ = (UniqueConstraint("job_id", "epoch"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    epoch: Mapped[int]
    metrics: Mapped[dict]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WorkerBeat(Base):
    """A training worker process and its last heartbeat (written by its liveness thread)."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    """``host:pid:random``, unique per worker process."""
    hostname: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int]
    queue: Mapped[str] = mapped_column(String(200))
    job_id: Mapped[int | None]
    """The job it runs now (no foreign key: the row is advisory)."""
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
