"""The body of a training task: claim the job, train with dallmi_core, publish the version.

Everything here takes ids and a session factory; progress, per-epoch metrics and the cancel flag cross
the training loop through :class:`JobCallback`, so dallmi_core never sees the database.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
import traceback
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.artifacts import ArtifactStore
from app.config import get_settings
from app.corpora.service import load_corpus
from app.db import utcnow
from app.jobs import labels
from app.jobs.orm import CANCELLED, FAILED, FINAL_STATUSES, RUNNING, SUCCEEDED, Job, JobEpoch
from app.models.policy import hub_allowed
from app.models.service import add_trained_version
from dallmi_core import (
    Callback,
    Progress,
    TrainConfig,
    TrainingCancelled,
    adapt,
    finetune,
    verify_checkpoint,
)
from dallmi_core import Corpus as CoreCorpus

log = logging.getLogger(__name__)


class JobCallback(Callback):
    """Writes progress (at most every ``min_interval_s``) and epoch metrics; reads the cancel flag."""

    def __init__(self, sessions: sessionmaker[Session], job_id: int, attempt: int, min_interval_s: float = 1.0) -> None:
        self.sessions, self.job_id, self.attempt, self.min_interval_s = sessions, job_id, attempt, min_interval_s
        self._last_write = 0.0

    def _write_progress(self, progress: Progress, session: Session) -> None:
        session.execute(
            update(Job)
            .where(Job.id == self.job_id)
            .values(
                epoch=progress.epoch,
                epochs=progress.epochs,
                step=progress.step,
                total_steps=progress.total_steps,
                loss=progress.loss,
                eta_s=progress.eta_s,
                heartbeat_at=utcnow(),
            )
        )
        self._last_write = time.monotonic()

    def on_step(self, progress: Progress) -> None:
        """Progress and heartbeat, throttled."""
        if time.monotonic() - self._last_write >= self.min_interval_s:
            with self.sessions.begin() as session:
                self._write_progress(progress, session)

    def on_epoch_end(self, progress: Progress, metrics: dict) -> None:
        """One metrics row per epoch, tagged with the attempt that ran it (replaced if an epoch is redone)."""
        clean = {**{k: v for k, v in metrics.items() if k != "per_label"}, "attempt": self.attempt}
        with self.sessions.begin() as session:
            self._write_progress(progress, session)
            row = session.scalar(
                select(JobEpoch).where(JobEpoch.job_id == self.job_id, JobEpoch.epoch == progress.epoch)
            )
            if row is None:
                session.add(JobEpoch(job_id=self.job_id, epoch=progress.epoch, metrics=clean))
            else:
                row.metrics = clean

    def should_stop(self) -> bool:
        """True once ``DELETE /jobs/{id}`` has set the job's cancel flag (one indexed read per step)."""
        with self.sessions() as session:
            return bool(session.scalar(select(Job.cancel_requested).where(Job.id == self.job_id)))


class JobBusy(Exception):
    """The job is running on a worker whose heartbeat is fresh; try this delivery again later."""


def _claim(session: Session, job_id: int, heartbeat_timeout_s: float) -> Job | None:
    """Mark the job running, or None when it is gone, finished or cancelled.

    Raises:
        JobBusy: another worker's heartbeat on the job is younger than ``heartbeat_timeout_s``.
    """
    job = session.get(Job, job_id, with_for_update=True)
    if job is None or job.status in FINAL_STATUSES:
        return None
    fresh = utcnow() - timedelta(seconds=heartbeat_timeout_s)
    if job.status == RUNNING and job.heartbeat_at is not None and job.heartbeat_at > fresh:
        session.rollback()
        raise JobBusy(f"job {job_id} has a live worker")
    if job.cancel_requested:
        job.status, job.finished_at = CANCELLED, utcnow()
        session.commit()
        return None
    job.status, job.attempts, job.heartbeat_at = RUNNING, job.attempts + 1, utcnow()
    job.started_at = job.started_at or utcnow()
    session.commit()
    return job


@contextlib.contextmanager
def hub_access(allowed: bool) -> Iterator[None]:
    """Hugging Face hub downloads only for a base the user registered by hub name."""
    import huggingface_hub.constants as hub

    before = hub.HF_HUB_OFFLINE
    hub.HF_HUB_OFFLINE = not allowed
    os.environ["HF_HUB_OFFLINE"] = "0" if allowed else "1"
    try:
        yield
    finally:
        hub.HF_HUB_OFFLINE = before
        os.environ["HF_HUB_OFFLINE"] = "1" if before else "0"


def _base_path(job: Job, store: ArtifactStore) -> str:
    base = job.base_version
    if base.path is None:
        return base.source
    path = store.resolve(base.path)
    verify_checkpoint(path, base.checksums or {})
    return str(path)


def _corpora(job: Job, store: ArtifactStore) -> tuple[CoreCorpus, CoreCorpus | None]:
    """The job's corpora with labels renamed and ordered as the base model's (when it has labels)."""
    if job.corpus is None:
        raise RuntimeError("the job's corpus was deleted")
    corpus = load_corpus(store=store, corpus=job.corpus)
    order = job.base_version.labels or labels.mapped(corpus.labels, job.label_map)
    corpus = labels.align(corpus, base_labels=order, label_map=job.label_map)
    if job.eval_corpus is None:
        return corpus, None
    evaluation = load_corpus(store=store, corpus=job.eval_corpus)
    return corpus, labels.align(evaluation, base_labels=order, label_map=job.label_map)


def _train(session: Session, job: Job, store: ArtifactStore, callback: JobCallback) -> Path:
    out_dir = store.job_dir(job.id)
    if (out_dir / "checkpoint").is_dir():  # finished before the worker died: publish it
        return out_dir / "checkpoint"
    corpus, evaluation = _corpora(job, store)
    config = TrainConfig.from_dict(job.params)
    base = _base_path(job, store)
    kind, method = job.kind, job.method
    allow_hub = hub_allowed(job.base_version.allow_hub, get_settings().allow_hub)  # DALLMI_ALLOW_HUB, now
    session.commit()  # hold no transaction open while training
    with hub_access(allow_hub):
        if kind == "finetune":
            result = finetune(
                base=base, corpus=corpus, config=config, out_dir=out_dir, eval_corpus=evaluation, callbacks=[callback]
            )
        else:
            result = adapt(
                base=base, corpus=corpus, config=config, out_dir=out_dir, eval_corpus=evaluation, callbacks=[callback],
                method="bce" if method == "bce" else "dallmi",
            )  # fmt: skip
    return result.checkpoint_dir


def _finish(sessions: sessionmaker[Session], job_id: int, **values) -> None:
    with sessions.begin() as session:
        session.execute(update(Job).where(Job.id == job_id).values(finished_at=utcnow(), **values))


def run_job(sessions: sessionmaker[Session], *, job_id: int, store: ArtifactStore, heartbeat_timeout_s: float) -> None:
    """Run one job to a final status; safe to call again for the same job (redelivery).

    Raises:
        JobBusy: the job is held by a live worker (the task retries later).
    """
    with sessions() as session:
        job = _claim(session, job_id, heartbeat_timeout_s)
        if job is None:
            return
        try:
            checkpoint = _train(session, job, store, JobCallback(sessions, job_id, job.attempts))
            version = add_trained_version(session, store=store, job=job, checkpoint=checkpoint)
            job.status, job.result_version_id, job.finished_at = SUCCEEDED, version.id, utcnow()
            session.commit()
        except TrainingCancelled:
            _finish(sessions, job_id, status=CANCELLED)
            shutil.rmtree(store.job_dir(job_id), ignore_errors=True)
            return
        except Exception as exc:  # recorded on the job; its state (or checkpoint) stays for a retry
            session.rollback()
            log.exception("job %s failed", job_id)
            text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            _finish(sessions, job_id, status=FAILED, error=text)
            return
    shutil.rmtree(store.job_dir(job_id), ignore_errors=True)
    log.info("job %s succeeded: %s", job_id, version.ref)
