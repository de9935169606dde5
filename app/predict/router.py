"""HTTP routes of prediction."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from app.config import SettingsDep
from app.db import SessionDep
from app.deps import StoreDep
from app.errors import error_responses
from app.fields import TextQuery
from app.models.schemas import REF_PATTERN
from app.predict import service
from app.predict.cache import ModelCache
from app.predict.schemas import PredictCreate, PredictionsPublic

router = APIRouter(prefix="/predict", tags=["predict"])


async def get_cache(request: Request) -> ModelCache:
    """The model cache made in the app's lifespan (async: no thread hop per request)."""
    return request.app.state.model_cache


CacheDep = Annotated[ModelCache, Depends(get_cache)]


@router.get("", response_model=PredictionsPublic, responses=error_responses(404, 409, 422, 503))
async def predict_one(
    session: SessionDep,
    settings: SettingsDep,
    store: StoreDep,
    cache: CacheDep,
    model: Annotated[str, Query(pattern=REF_PATTERN, description="NAME, NAME:VERSION or NAME@ALIAS")],
    text: TextQuery,
    top_k: Annotated[int | None, Query(ge=1)] = None,
    threshold: Annotated[float | None, Query(ge=0, le=1)] = None,
):
    """Score one text: every label's sigmoid score, best first, and the predicted labels."""
    return await service.predict(
        session,
        store=store,
        cache=cache,
        ref=model,
        texts=[text],
        top_k=top_k,
        threshold=threshold,
        max_texts=settings.max_predict_texts,
        loc=("query", "model"),
        texts_loc=("query", "text"),
    )


@router.post("", response_model=PredictionsPublic, responses=error_responses(400, 404, 409, 422, 503))
async def predict_many(
    session: SessionDep, settings: SettingsDep, store: StoreDep, cache: CacheDep, request: PredictCreate
):
    """Score several texts with one version."""
    return await service.predict(
        session,
        store=store,
        cache=cache,
        ref=request.model,
        texts=request.texts,
        top_k=request.top_k,
        threshold=request.threshold,
        max_texts=settings.max_predict_texts,
        loc=("body", "model"),
        texts_loc=("body", "texts"),
    )
