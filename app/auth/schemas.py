"""Pydantic schemas of the API-key routes."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from app.fields import UtcDatetime

Scope = Literal["predict", "train", "admin"]


class ApiKeyCreate(BaseModel):
    """A new key: a name for people and its scopes."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f]+$")
    scopes: list[Scope] = Field(min_length=1, max_length=3)
    expires_at: AwareDatetime | None = None


class ApiKeyPublic(BaseModel):
    """A key without its secret."""

    model_config = ConfigDict(from_attributes=True)

    prefix: str = Field(description="public id of the key: dallmi_<prefix>_...")
    name: str
    scopes: list[str]
    created_at: UtcDatetime
    expires_at: UtcDatetime | None
    revoked_at: UtcDatetime | None
    last_used_at: UtcDatetime | None


class ApiKeyCreated(ApiKeyPublic):
    """A new key with the key in clear: shown this once, never stored."""

    key: str


class ApiKeysPublic(BaseModel):
    """All keys."""

    data: list[ApiKeyPublic]
    count: int
