"""Pydantic schemas of the prediction API."""

from __future__ import annotations

from pydantic import BaseModel, Field

from app.fields import NonBlankText
from app.models.schemas import ModelRef


class PredictCreate(BaseModel):
    """Score several texts with one model version."""

    model: ModelRef
    texts: list[NonBlankText] = Field(min_length=1)
    top_k: int | None = Field(default=None, ge=1, description="return only the k best-scored labels")
    threshold: float | None = Field(
        default=None, ge=0, le=1, description="one threshold for every label instead of the version's own"
    )


class LabelScore(BaseModel):
    """A label's sigmoid score."""

    label: str
    score: float


class TextPrediction(BaseModel):
    """Scores of one text, best first, and the labels predicted for it."""

    index: int
    scores: list[LabelScore]
    predicted: list[str]


class PredictionsPublic(BaseModel):
    """Predictions of one version for a list of texts."""

    model: str
    thresholds: dict[str, float]
    results: list[TextPrediction]
