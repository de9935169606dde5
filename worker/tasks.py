"""Celery tasks: thin adapters that take ids and call ``worker.training``."""

from __future__ import annotations

import os
from functools import cached_property, lru_cache
from typing import Any

from celery import Task, shared_task
from celery.signals import worker_ready, worker_shutdown, worker_shutting_down
from sqlalchemy.orm import Session, sessionmaker

from app.artifacts import ArtifactStore
from app.config import Settings, get_settings
from app.db import make_sessionmaker
from app.queue import JobQueue
from worker import training
from worker.celery_app import TRAIN_TASK
from worker.liveness import Liveness

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # only a base registered by hub name may download


@lru_cache(maxsize=1)
def liveness() -> Liveness:
    """The worker process's liveness thread (made on first use; started when the worker is ready)."""
    settings = get_settings()
    queue = JobQueue(settings)
    return Liveness(sessions=make_sessionmaker(settings.database_url), settings=settings, enqueue=queue.send_resume)


@worker_ready.connect
def _start_liveness(**_: Any) -> None:
    liveness().start()


@worker_shutting_down.connect
def _pause_on_shutdown(**_: Any) -> None:
    """SIGTERM (warm shutdown): the running job pauses at its next step, saved, and is queued again."""
    liveness().shutdown.set()


@worker_shutdown.connect
def _stop_liveness(**_: Any) -> None:
    liveness().stop()


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
    # Deliberate: acknowledge after the job ran, and re-queue if the worker process is lost. The reaper of
    # the live workers (worker/liveness.py) is what rescues a killed worker's job within the heartbeat
    # timeout; a late redelivery of this message is harmless (run_job is idempotent per job id).
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
        training.run_job(self.sessions, job_id=job_id, store=self.store, heartbeat_timeout_s=timeout,
                         liveness=liveness(), enqueue=liveness().enqueue)  # fmt: skip
    except training.JobBusy as exc:
        raise self.retry(countdown=timeout, exc=exc) from exc
