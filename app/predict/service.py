"""Prediction: resolve the model reference, load the version through the cache, score, threshold."""

from __future__ import annotations

import asyncio

import numpy as np
from sqlalchemy.orm import Session

from app import metrics
from app.artifacts import ArtifactStore
from app.errors import ConflictError, ErrorItem, InvalidInputError, UnavailableError
from app.models import service as models
from app.predict.cache import ModelCache, VersionFiles
from app.predict.schemas import LabelScore, PredictionsPublic, TextPrediction
from dallmi_core import CheckpointIntegrityError


def _check_texts(texts: list[str], *, max_texts: int, loc: tuple[str, ...]) -> None:
    if len(texts) > max_texts:
        raise InvalidInputError(f"at most {max_texts} texts per request, got {len(texts)}", loc=loc)
    empty = [
        ErrorItem(loc=(*loc, i), msg=f"text {i} is empty", type="empty_text")
        for i, text in enumerate(texts)
        if not text.strip()
    ]
    if empty:
        raise InvalidInputError(items=empty)


def _resolve(session: Session, *, store: ArtifactStore, ref: str, loc: tuple[str, ...]):
    """What scoring needs of the version, as plain values; the session is closed before returning.

    Closing in the same thread that queried returns the connection to the pool at once (a close queued
    behind lookups that wait for the pool would deadlock it).
    """
    try:
        version = models.resolve_ref(session, ref=ref, loc=loc)
        if not version.labels or version.path is None:
            raise ConflictError(
                f"{version.ref} is a base encoder without a classification head; use a trained version",
                loc=loc,
                type="not_a_classifier",
            )
        path, checksums = store.resolve(version.path), version.checksums or {}
        files = VersionFiles(version_id=version.id, path=path, checksums=checksums)
        return version.ref, list(version.labels), np.asarray(version.thresholds, dtype=np.float32), files
    finally:
        session.close()


def _rank(scores: np.ndarray, labels: list[str], thresholds: np.ndarray, top_k: int | None) -> list[TextPrediction]:
    order = np.argsort(-scores, axis=1, kind="stable")  # (N, L)
    predicted = scores >= thresholds[None, :]  # (N, L)
    return [
        TextPrediction(
            index=i,
            scores=[LabelScore(label=labels[j], score=float(scores[i, j])) for j in order[i][:top_k]],
            predicted=[labels[j] for j in order[i] if predicted[i, j]],
        )
        for i in range(scores.shape[0])
    ]


async def predict(
    session: Session,
    *,
    store: ArtifactStore,
    cache: ModelCache,
    ref: str,
    texts: list[str],
    top_k: int | None,
    threshold: float | None,
    max_texts: int,
    loc: tuple[str, ...],
    texts_loc: tuple[str, ...],
) -> PredictionsPublic:
    """Every label's score per text, best first, and the labels over the thresholds.

    The reference is resolved in a worker thread, then ``session`` is closed, so its database connection
    goes back to the pool before any model is loaded or text scored. Scoring goes through the version's
    micro-batcher (on the cache's own executor), so concurrent requests share forward passes.

    Raises:
        InvalidInputError: too many or empty texts, or a base encoder without a head (422).
        NotFoundError: no such model, version or alias (404).
        UnavailableError: the version's files are missing or fail their checksums (503).
        OverloadedError: the version's prediction queue is full (503 with ``Retry-After``).
    """
    _check_texts(texts, max_texts=max_texts, loc=texts_loc)
    with cache.arrival():
        name, labels, thresholds, files = await asyncio.to_thread(_resolve, session, store=store, ref=ref, loc=loc)
        try:
            loaded = await cache.get(files)
        except CheckpointIntegrityError as exc:
            raise UnavailableError(str(exc), loc=loc, type="checkpoint_integrity") from exc
        except FileNotFoundError as exc:
            raise UnavailableError(f"files of {name} are missing: {exc}", loc=loc, type="checkpoint_missing") from exc
    scores = await loaded.batcher.score(texts)  # (N, L)
    metrics.PREDICT_TEXTS.inc(len(texts))
    if threshold is not None:
        thresholds = np.full(len(labels), threshold, dtype=np.float32)
    return PredictionsPublic(
        model=name,
        thresholds={label: float(t) for label, t in zip(labels, thresholds, strict=True)},
        results=_rank(scores, labels, thresholds, top_k),
    )
