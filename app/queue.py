"""Sending training jobs to the workers (only ever after the job's row is committed)."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from fastapi import Depends

from app.config import Settings, SettingsDep
from worker.celery_app import TRAIN_TASK, make_celery

NEW_PRIORITY, RESUME_PRIORITY = 3, 0
"""Redis serves priority 0 first: a job queued again after its worker died or paused resumes before jobs
that never started (the filesystem broker of the embedded mode ignores priorities)."""


class JobQueue:
    """Puts job ids on the training queue; tasks carry ids only."""

    def __init__(self, settings: Settings) -> None:
        self.celery = make_celery(settings)
        self.queue = settings.train_queue

    def send_train(self, job_id: int) -> None:
        """Enqueue the training task of a committed job."""
        self.celery.send_task(TRAIN_TASK, args=[job_id], queue=self.queue, priority=NEW_PRIORITY)

    def send_resume(self, job_id: int) -> None:
        """Enqueue again a job that already ran (reaped or paused), ahead of the jobs that never started."""
        self.celery.send_task(TRAIN_TASK, args=[job_id], queue=self.queue, priority=RESUME_PRIORITY)

    def ping(self) -> None:
        """Raise unless the broker accepts a connection."""
        with self.celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=3)


@lru_cache(maxsize=8)
def _queue_for(settings_json: str) -> JobQueue:
    return JobQueue(Settings.model_validate_json(settings_json))


def get_queue(settings: SettingsDep) -> JobQueue:
    """One queue (and Celery app) per distinct settings."""
    return _queue_for(settings.model_dump_json())


QueueDep = Annotated[JobQueue, Depends(get_queue)]
