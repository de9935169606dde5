"""ORM models of the registry: named models, their versions, aliases and the alias history."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, utcnow


class RegisteredModel(Base):
    """A model name; ``kind`` is ``base`` (an encoder to start from) or ``trained``."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    versions: Mapped[list[ModelVersion]] = relationship(
        back_populates="model", order_by="ModelVersion.version", lazy="selectin"
    )


class ModelVersion(Base):
    """One immutable version: a base encoder reference or a trained checkpoint with its lineage."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    version: Mapped[int]
    source: Mapped[str] = mapped_column(String(1000))
    """Base models: ``minilm-l6``, a local directory or a hub name. Trained: the checkpoint folder."""
    path: Mapped[str | None] = mapped_column(String(500))
    """Trained versions: checkpoint folder relative to the artifact folder."""
    allow_hub: Mapped[bool] = mapped_column(default=False)
    labels: Mapped[list | None]
    thresholds: Mapped[list | None]
    metrics: Mapped[dict] = mapped_column(default=dict)
    history: Mapped[list] = mapped_column(default=list)
    config: Mapped[dict] = mapped_column(default=dict)
    method: Mapped[str | None] = mapped_column(String(16))
    checksums: Mapped[dict | None]
    corpus_hash: Mapped[str | None] = mapped_column(String(64))
    eval_corpus_hash: Mapped[str | None] = mapped_column(String(64))
    parent_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    job_id: Mapped[int | None] = mapped_column(index=True)
    """The job that trained it (no foreign key: jobs already point at versions)."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None]
    """Set when the version was deleted but is kept, without its files, because jobs, child versions or
    the alias history refer to it (lineage stays readable); such a version cannot be used any more."""

    model: Mapped[RegisteredModel] = relationship(back_populates="versions", lazy="joined")
    parent: Mapped[ModelVersion | None] = relationship(remote_side=[id])

    @property
    def ref(self) -> str:
        """``name:version``."""
        return f"{self.model.name}:{self.version}"


class ModelAlias(Base):
    """The current target of an alias such as ``production``."""

    __tablename__ = "model_aliases"
    __table_args__ = (UniqueConstraint("model_id", "alias"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    alias: Mapped[str] = mapped_column(String(100))
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AliasEvent(Base):
    """Append-only history of alias moves."""

    __tablename__ = "alias_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    alias: Mapped[str] = mapped_column(String(100))
    from_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    to_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    moved_at: Mapped[datetime] = mapped_column(default=utcnow)
