"""Field types shared by the API schemas and routes: what the database columns hold, aware timestamps,
texts that are not blank. Declared once so the OpenAPI states the same bounds the service enforces."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from fastapi import Path, Query
from pydantic import AfterValidator, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

DB_INT_MAX = 2**31 - 1
"""Largest value of an ``Integer`` column in PostgreSQL (SQLite holds more): the bound of every id,
version number and count the API takes."""

DbId = Annotated[int, Field(ge=1, le=DB_INT_MAX)]
"""An id or version number in a request body."""
IdPath = Annotated[int, Path(ge=1, le=DB_INT_MAX)]
"""An id or version number in the URL path."""
Offset = Annotated[int, Query(ge=0, le=DB_INT_MAX)]
"""How many rows of a listing to skip."""
Limit = Annotated[int, Query(ge=1, le=1000)]
"""Largest page of a listing."""


def as_utc(value: datetime) -> datetime:
    """The same instant with its timezone: naive values (SQLite returns them) are UTC, as stored."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]
"""A timestamp that always leaves the API with its UTC offset (RFC 3339 ``date-time``)."""


_LABEL_NAME: dict = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": r"^[^\x00-\x1f\x7f]*$"}
LabelName = Annotated[str, Field(min_length=1, max_length=200, pattern=_LABEL_NAME["pattern"])]
"""A label name as a request names it (``dallmi_core.corpus`` holds the full rules of label names)."""
LabelMap = Annotated[
    dict[LabelName, LabelName],
    WithJsonSchema({"type": "object", "propertyNames": _LABEL_NAME, "additionalProperties": _LABEL_NAME}),
]
"""Label name -> label name; the schema states the rules of the keys too (``propertyNames``)."""


def not_blank(value: str) -> str:
    """``value`` unchanged, or a validation error of type ``empty_text`` when it is only whitespace."""
    if not value.strip():
        raise PydanticCustomError("empty_text", "text is empty or only whitespace")
    return value


NON_BLANK: dict = {"pattern": r"\S"}
"""The JSON schema of :func:`not_blank`: at least one character that is not whitespace."""
NonBlankText = Annotated[str, AfterValidator(not_blank), Field(json_schema_extra=NON_BLANK)]
"""A text to score in a request body."""
TextQuery = Annotated[str, AfterValidator(not_blank), Query(json_schema_extra=NON_BLANK)]
"""A text to score in the query string."""
