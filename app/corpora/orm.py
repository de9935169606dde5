"""ORM model of an uploaded corpus."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, utcnow


class Corpus(Base):
    """A validated corpus; its rows live in the artifact store as a wide CSV at ``path``."""

    __tablename__ = "corpora"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(300))
    format: Mapped[str] = mapped_column(String(16))
    n_rows: Mapped[int]
    labels: Mapped[list]
    known_positives: Mapped[dict]
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int]
    path: Mapped[str] = mapped_column(String(500))
    """Relative to the artifact folder."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
