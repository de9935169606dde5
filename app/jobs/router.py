"""HTTP routes of jobs: submission of fine-tuning and adaptation, status, cancellation, retry."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, status

from app.config import Settings, SettingsDep
from app.db import SessionDep
from app.errors import error_responses
from app.fields import IdPath, Limit, Offset
from app.jobs import service
from app.jobs.schemas import AdaptCreate, FinetuneCreate, JobPublic, JobsPublic, JobSubmitted, job_public
from app.queue import QueueDep

router = APIRouter(tags=["jobs"])

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]


def job_limits(settings: Settings) -> service.JobLimits:
    """The configured limits of one job."""
    return service.JobLimits(max_epochs=settings.max_job_epochs, max_steps=settings.max_job_steps)


@router.post(
    "/finetune", status_code=status.HTTP_202_ACCEPTED, response_model=JobSubmitted,
    responses=error_responses(400, 404, 409, 422, 503),
)
def submit_finetune(
    session: SessionDep,
    settings: SettingsDep,
    queue: QueueDep,
    request: FinetuneCreate,
    idempotency_key: IdempotencyKey = None,
):
    """Queue supervised fine-tuning of a base model on a labelled corpus."""
    job = service.submit_job(
        session, kind="finetune", request=request, enqueue=queue.send_train, idempotency_key=idempotency_key,
        limits=job_limits(settings),
    )
    return JobSubmitted(job_id=job.id, status=job.status)


@router.post(
    "/adapt", status_code=status.HTTP_202_ACCEPTED, response_model=JobSubmitted,
    responses=error_responses(400, 404, 409, 422, 503),
)
def submit_adapt(
    session: SessionDep,
    settings: SettingsDep,
    queue: QueueDep,
    request: AdaptCreate,
    idempotency_key: IdempotencyKey = None,
):
    """Queue adaptation of a fine-tuned model to a partially labelled target corpus."""
    job = service.submit_job(
        session, kind="adapt", request=request, enqueue=queue.send_train, idempotency_key=idempotency_key,
        limits=job_limits(settings),
    )
    return JobSubmitted(job_id=job.id, status=job.status)


@router.get("/jobs", response_model=JobsPublic, responses=error_responses(422))
def list_jobs(
    session: SessionDep,
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"] | None = None,
    offset: Offset = 0,
    limit: Limit = 100,
):
    """Jobs, newest first."""
    rows, count = service.list_jobs(session, status=status, offset=offset, limit=limit)
    return JobsPublic(data=[job_public(j) for j in rows], count=count)


@router.get("/jobs/{job_id}", response_model=JobPublic, responses=error_responses(404, 422))
def get_job(session: SessionDep, job_id: IdPath):
    """A job's status, progress, per-epoch metrics, error and resulting version."""
    return job_public(service.get_job(session, job_id=job_id))


@router.delete(
    "/jobs/{job_id}", status_code=status.HTTP_202_ACCEPTED, response_model=JobPublic,
    responses=error_responses(404, 409, 422),
)
def cancel_job(session: SessionDep, job_id: IdPath):
    """Cancel a job; a running one stops within one training step and registers no version."""
    return job_public(service.cancel_job(session, job_id=job_id))


@router.post(
    "/jobs/{job_id}/retry", status_code=status.HTTP_202_ACCEPTED, response_model=JobPublic,
    responses=error_responses(404, 409, 422, 503),
)
def retry_job(session: SessionDep, queue: QueueDep, job_id: IdPath):
    """Queue a failed job again; it resumes from its last epoch checkpoint."""
    return job_public(service.retry_job(session, job_id=job_id, enqueue=queue.send_train))
