"""Job submission, listing, cancellation and retry. Training itself runs in ``worker.training``."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.corpora.orm import Corpus
from app.db import utcnow
from app.errors import (
    ConflictError,
    ErrorItem,
    InvalidInputError,
    NotFoundError,
    UnavailableError,
)
from app.jobs import labels
from app.jobs.orm import CANCELLED, FAILED, FINAL_STATUSES, QUEUED, Job
from app.jobs.schemas import AdaptCreate, FinetuneCreate
from app.models import service as models
from app.models.orm import ModelVersion, RegisteredModel
from dallmi_core import TrainConfig

Enqueue = Callable[[int], None]


def _corpus(session: Session, corpus_id: int, field: str) -> Corpus:
    row = session.get(Corpus, corpus_id)
    if row is None:
        raise NotFoundError(f"corpus {corpus_id} does not exist", loc=("body", field))
    return row


def _base_version(session: Session, ref: str) -> ModelVersion:
    return models.resolve_ref(session, ref=ref, loc=("body", "base_model"))


@dataclass(frozen=True)
class JobLimits:
    """What one job may hold a worker for (``DALLMI_MAX_JOB_EPOCHS``, ``DALLMI_MAX_JOB_STEPS``)."""

    max_epochs: int = 100
    max_steps: int = 200_000


def _check_params(params: dict, *, n_rows: int, limits: JobLimits) -> int:
    """Validate training parameters with ``TrainConfig`` (the rules the worker trains with) and the service's
    limits on a run of ``n_rows`` rows; returns the number of epochs."""
    try:
        config = TrainConfig.from_dict(params)
        config.check_limits(n_rows, max_epochs=limits.max_epochs, max_steps=limits.max_steps)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"invalid params: {exc}", loc=("body", "params")) from exc
    return config.epochs


def _check_target_name(session: Session, name: str) -> None:
    kind = session.scalar(select(RegisteredModel.kind).where(RegisteredModel.name == name))
    if kind == models.BASE:
        raise ConflictError(
            f"{name} is a base model; trained versions need a model name of their own", loc=("body", "name")
        )


def validate_request(
    session: Session, *, kind: str, request: FinetuneCreate | AdaptCreate, limits: JobLimits | None = None
) -> tuple[int, int]:
    """Every check a submission must pass before a job is stored; returns (base version id, epochs).

    Raises:
        NotFoundError: the corpus or base model does not exist.
        ConflictError: the base is not a fine-tuned model (adapt), or ``name`` is a base model's.
        InvalidInputError: invalid or too large params, label sets that do not match.
    """
    corpus = _corpus(session, request.corpus_id, "corpus_id")
    base = _base_version(session, request.base_model)
    epochs = _check_params(request.train_params(), n_rows=corpus.n_rows, limits=limits or JobLimits())
    _check_target_name(session, request.name)
    label_map = getattr(request, "label_map", None)
    if kind == "adapt" and not base.labels:
        raise ConflictError(
            f"{base.ref} is a base encoder without labels; adapt a fine-tuned version", loc=("body", "base_model")
        )
    errors: list[ErrorItem] = []
    if base.labels:
        errors += labels.differences(target=corpus.labels, base=base.labels, base_ref=base.ref, label_map=label_map)
    if kind == "adapt":
        errors += labels.without_positives(corpus.known_positives)
    if request.eval_corpus_id is not None:
        evaluation = _corpus(session, request.eval_corpus_id, "eval_corpus_id")
        if sorted(evaluation.labels) != sorted(corpus.labels):
            errors += labels.differences(
                target=evaluation.labels,
                base=corpus.labels,
                base_ref=f"corpus {corpus.id}",
                label_map=None,
                field="eval_corpus_id",
            )
    if errors:
        raise InvalidInputError(items=errors)
    return base.id, epochs


def _request_hash(kind: str, request: FinetuneCreate | AdaptCreate) -> str:
    return hashlib.sha256(f"{kind}:{request.model_dump_json()}".encode()).hexdigest()


def _by_key(session: Session, key: str, request_hash: str) -> Job | None:
    job = session.scalar(select(Job).where(Job.idempotency_key == key))
    if job is not None and job.request_hash != request_hash:
        raise ConflictError(
            "Idempotency-Key was already used for a different request", loc=("header", "Idempotency-Key")
        )
    return job


def submit_job(
    session: Session,
    *,
    kind: str,
    request: FinetuneCreate | AdaptCreate,
    enqueue: Enqueue,
    idempotency_key: str | None = None,
    limits: JobLimits | None = None,
) -> Job:
    """Validate, store and enqueue a job; a repeated ``idempotency_key`` returns the first job."""
    request_hash = _request_hash(kind, request)
    if idempotency_key and (existing := _by_key(session, idempotency_key, request_hash)):
        return existing
    base_version_id, epochs = validate_request(session, kind=kind, request=request, limits=limits)
    job = Job(
        kind=kind,
        name=request.name,
        method=getattr(request, "method", "bce"),
        params=request.train_params(),
        label_map=getattr(request, "label_map", None),
        corpus_id=request.corpus_id,
        eval_corpus_id=request.eval_corpus_id,
        base_version_id=base_version_id,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        epochs=epochs,
    )
    session.add(job)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        existing = _by_key(session, idempotency_key, request_hash) if idempotency_key else None
        if existing is None:
            raise
        return existing
    _enqueue_committed(session, job, enqueue)
    return job


def _enqueue_committed(session: Session, job: Job, enqueue: Enqueue) -> None:
    try:
        enqueue(job.id)
    except Exception as exc:  # the broker is down: the job must not stay queued forever
        job.status, job.error, job.finished_at = FAILED, f"could not enqueue: {exc}", utcnow()
        session.commit()
        raise UnavailableError(f"the job broker is unreachable: {exc}", loc=("broker",)) from exc


def get_job(session: Session, *, job_id: int) -> Job:
    """The job with this id, or ``NotFoundError``."""
    job = session.get(Job, job_id)
    if job is None:
        raise NotFoundError(f"job {job_id} does not exist", loc=("path", "job_id"))
    return job


def list_jobs(
    session: Session, *, status: str | None = None, offset: int = 0, limit: int = 100
) -> tuple[list[Job], int]:
    """A page of jobs, newest first, optionally of one status, and the total count."""
    query = select(Job)
    if status:
        query = query.where(Job.status == status)
    rows = session.scalars(query.order_by(Job.id.desc()).offset(offset).limit(limit)).all()
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    return list(rows), total


def cancel_job(session: Session, *, job_id: int) -> Job:
    """Cancel a job: a queued one at once, a running one at its next training step."""
    job = get_job(session, job_id=job_id)
    if job.status in FINAL_STATUSES:
        raise ConflictError(f"job {job_id} is already {job.status}", loc=("path", "job_id"), type="job_finished")
    job.cancel_requested = True
    if job.status == QUEUED:
        job.status, job.finished_at = CANCELLED, utcnow()
    session.commit()
    return job


def retry_job(session: Session, *, job_id: int, enqueue: Enqueue) -> Job:
    """Queue a failed job again; it resumes from its last epoch checkpoint."""
    job = get_job(session, job_id=job_id)
    if job.status != FAILED:
        raise ConflictError(f"job {job_id} is {job.status}; only failed jobs can be retried", loc=("path", "job_id"))
    job.status, job.error, job.finished_at, job.cancel_requested = QUEUED, None, None, False
    session.commit()
    _enqueue_committed(session, job, enqueue)
    return job
