"""Pydantic schemas of the corpora API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.fields import UtcDatetime

CorpusFormat = Literal["auto", "wide", "labels", "jsonl"]


class CorpusPublic(BaseModel):
    """A stored corpus as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    filename: str
    format: str
    rows: int = Field(validation_alias="n_rows")
    labels: list[str]
    known_positives: dict[str, int]
    content_hash: str
    size_bytes: int
    created_at: UtcDatetime


class CorporaPublic(BaseModel):
    """A page of corpora."""

    data: list[CorpusPublic]
    count: int
