"""Celery tasks: thin adapters that take ids and call ``worker.training``."""

from __future__ import annotations

import os
from functools import cached_property

from celery import Task, shared_task
from sqlalchemy.orm import Session, sessionmaker

from app.artifacts import ArtifactStore
from app.config import Settings, get_settings
from app.db import make_sessionmaker
from worker import training
from worker.celery_app import TRAIN_TASK

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # only a base registered by hub name may download


class TrainingTask(Task):
    """Base class: settings, database sessions and the artifact store are made on first use, per process."""

    @cached_property
    def settings(self) -> Settings:
        """The worker's settings."""
        return get_settings()

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        """Session factory on the worker's database."""
        return make_sessionmaker(self.settings.database_url)

    @cached_property
    def store(self) -> ArtifactStore:
        """The shared artifact folder."""
        return ArtifactStore(self.settings.artifacts_dir)


@shared_task(
    bind=True,
    base=TrainingTask,
    name=TRAIN_TASK,
    # Deliberate: acknowledge after the job ran, and re-queue if the worker process is lost, so a killed
    # worker's job is delivered again and resumes from out_dir/state. run_job is idempotent per job id.
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    # A training failure is recorded on the job, not retried (POST /jobs/{id}/retry queues it again);
    # the only retry is of a delivery that finds the job held by a live worker (see JobBusy).
    max_retries=None,
)
def train(self: TrainingTask, job_id: int) -> None:
    """Run training job ``job_id`` (fine-tuning or adaptation) to a final status."""
    timeout = self.settings.heartbeat_timeout_s
    try:
        training.run_job(self.sessions, job_id=job_id, store=self.store, heartbeat_timeout_s=timeout)
    except training.JobBusy as exc:
        raise self.retry(countdown=timeout, exc=exc) from exc
