"""ORM model of API keys: a public prefix to find the row and the argon2 hash of the secret part."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, utcnow


class ApiKey(Base):
    """One API key. The key itself (``dallmi_<prefix>_<secret>``) is shown once and never stored."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    """Public id of the key (the part after ``dallmi_``); shown by ``dallmi keys list``."""
    name: Mapped[str] = mapped_column(String(100))
    scopes: Mapped[list]
    """Subset of ``predict``, ``train``, ``admin``; ``admin`` implies the others."""
    secret_hash: Mapped[str] = mapped_column(String(200))
    """argon2id hash (PHC string) of the secret part."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    """Last verification that missed the cache (so at most once per cache TTL and API process)."""
