"""The body of a training task: claim the job, train with dallmi_core, publish the version.

Everything here takes ids and a session factory; progress, per-epoch metrics, the cancel flag and the
warm-shutdown flag cross the training loop through :class:`JobCallback`, so dallmi_core never sees the
database. Every write of a running job is conditional on the :class:`Claim` that started it: a worker
that lost its job to the reaper (e.g. cut off from the database for longer than the heartbeat timeout)
can neither overwrite its progress nor publish a second version.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.artifacts import ArtifactStore
from app.config import get_settings
from app.corpora.service import load_corpus
from app.db import rowcount, utcnow
from app.jobs import labels
from app.jobs.orm import CANCELLED, FAILED, FINAL_STATUSES, QUEUED, RUNNING, SUCCEEDED, Job, JobEpoch
from app.models.policy import hub_allowed
from app.models.service import add_trained_version
from dallmi_core import (
    Callback,
    Progress,
    TrainConfig,
    TrainingCancelled,
    TrainingPaused,
    adapt,
    finetune,
    verify_checkpoint,
)
from dallmi_core import Corpus as CoreCorpus
from worker.liveness import Liveness

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    """One run of a job: the worker that claimed it and the attempt number the claim gave it."""

    job_id: int
    worker_id: str
    attempt: int

    def where(self) -> tuple:
        """Conditions true while the job is still this run's."""
        return Job.id == self.job_id, Job.status == RUNNING, Job.worker == self.worker_id, Job.attempts == self.attempt


class JobCallback(Callback):
    """Writes progress (at most every ``min_interval_s``) and epoch metrics; reads the cancel flag, the
    worker's warm-shutdown flag (pause) and the lost-claim flag set by the liveness thread."""

    def __init__(self, sessions: sessionmaker[Session], claim: Claim, *, lost: threading.Event,
                 shutdown: threading.Event, min_interval_s: float = 1.0) -> None:  # fmt: skip
        self.sessions, self.claim, self.min_interval_s = sessions, claim, min_interval_s
        self.lost, self.shutdown = lost, shutdown
        self._last_write = 0.0

    def _write_progress(self, progress: Progress, session: Session) -> bool:
        result = session.execute(
            update(Job)
            .where(*self.claim.where())
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
        return bool(rowcount(result))

    def on_step(self, progress: Progress) -> None:
        """Progress and heartbeat, throttled."""
        if time.monotonic() - self._last_write >= self.min_interval_s:
            with self.sessions.begin() as session:
                self._write_progress(progress, session)

    def on_epoch_end(self, progress: Progress, metrics: dict) -> None:
        """One metrics row per epoch, tagged with the attempt that ran it (replaced if an epoch is redone)."""
        clean = {**{k: v for k, v in metrics.items() if k != "per_label"}, "attempt": self.claim.attempt}
        job_id = self.claim.job_id
        with self.sessions.begin() as session:
            if not self._write_progress(progress, session):
                return  # the job is no longer this run's
            row = session.scalar(select(JobEpoch).where(JobEpoch.job_id == job_id, JobEpoch.epoch == progress.epoch))
            if row is None:
                session.add(JobEpoch(job_id=job_id, epoch=progress.epoch, metrics=clean))
            else:
                row.metrics = clean

    def should_stop(self) -> bool:
        """True once ``DELETE /jobs/{id}`` set the cancel flag (one indexed read per step) or the claim was lost."""
        if self.lost.is_set():
            return True
        with self.sessions() as session:
            return bool(session.scalar(select(Job.cancel_requested).where(Job.id == self.claim.job_id)))

    def should_pause(self) -> bool:
        """True once the worker began a warm shutdown: the state is saved at this step and the job re-queued."""
        return self.shutdown.is_set()


class JobBusy(Exception):
    """The job is running on a worker whose heartbeat is fresh; try this delivery again later."""


def _claim(session: Session, job_id: int, heartbeat_timeout_s: float, worker_id: str) -> Job | None:
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
    job.status, job.attempts, job.heartbeat_at, job.worker = RUNNING, job.attempts + 1, utcnow(), worker_id
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


def _finish(sessions: sessionmaker[Session], claim: Claim, **values) -> None:
    with sessions.begin() as session:
        session.execute(update(Job).where(*claim.where()).values(finished_at=utcnow(), **values))


def _publish(session: Session, job: Job, store: ArtifactStore, checkpoint: Path, claim: Claim) -> str | None:
    """Register the version and mark the job succeeded in one transaction; None when the claim was lost."""
    session.refresh(job, with_for_update=True)  # concurrent publishers of one job queue up here
    if not (job.status == RUNNING and job.worker == claim.worker_id and job.attempts == claim.attempt):
        session.rollback()
        return None
    version = add_trained_version(session, store=store, job=job, checkpoint=checkpoint)
    job.status, job.result_version_id, job.finished_at = SUCCEEDED, version.id, utcnow()
    session.commit()
    return version.ref


def _hand_back(sessions: sessionmaker[Session], claim: Claim, enqueue: Callable[[int], None]) -> None:
    """After a warm pause: the job goes back to the queue without spending an attempt."""
    with sessions.begin() as session:
        moved = rowcount(session.execute(
            update(Job).where(*claim.where())
            .values(status=QUEUED, attempts=Job.attempts - 1, worker=None, heartbeat_at=None)
        ))  # fmt: skip
    if not moved:
        return
    try:
        enqueue(claim.job_id)
    except Exception:  # the broker is down: left running without a heartbeat, the reaper queues it later
        log.exception("could not queue job %s again after pausing it", claim.job_id)
        with sessions.begin() as session:
            session.execute(update(Job).where(Job.id == claim.job_id, Job.status == QUEUED).values(status=RUNNING))
    log.info("job %s paused by a warm shutdown and queued again", claim.job_id)


def run_job(sessions: sessionmaker[Session], *, job_id: int, store: ArtifactStore, heartbeat_timeout_s: float,
            liveness: Liveness, enqueue: Callable[[int], None]) -> None:  # fmt: skip
    """Run one job to a final status, or pause it on a warm shutdown; safe to call again for the same job.

    Args:
        liveness: the worker's heartbeat thread (its id, the warm-shutdown flag, the held job).
        enqueue: sends the job's task again (after a pause).

    Raises:
        JobBusy: the job is held by a live worker (the task retries later).
    """
    if liveness.shutdown.is_set():  # a stopping worker takes no new job: hand the delivery back
        enqueue(job_id)
        return
    with sessions() as session:
        job = _claim(session, job_id, heartbeat_timeout_s, liveness.worker_id)
        if job is None:
            return
        claim = Claim(job_id, liveness.worker_id, job.attempts)
        with liveness.holding(job_id, job.attempts) as held:
            callback = JobCallback(sessions, claim, lost=held.lost, shutdown=liveness.shutdown)
            _run_claimed(sessions, session, job, store, callback, enqueue)


def _run_claimed(sessions: sessionmaker[Session], session: Session, job: Job, store: ArtifactStore,
                 callback: JobCallback, enqueue: Callable[[int], None]) -> None:  # fmt: skip
    claim = callback.claim
    try:
        checkpoint = _train(session, job, store, callback)
        ref = _publish(session, job, store, checkpoint, claim)
    except TrainingPaused:
        if not callback.lost.is_set():
            _hand_back(sessions, claim, enqueue)
        return
    except TrainingCancelled:
        if not callback.lost.is_set():
            _finish(sessions, claim, status=CANCELLED)
            shutil.rmtree(store.job_dir(claim.job_id), ignore_errors=True)
        return
    except Exception as exc:  # recorded on the job; its state (or checkpoint) stays for a retry
        session.rollback()
        log.exception("job %s failed", claim.job_id)
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        _finish(sessions, claim, status=FAILED, error=text)
        return
    if ref is None:
        log.warning("job %s: finished, but another worker holds it now; its result is dropped", claim.job_id)
        return
    shutil.rmtree(store.job_dir(claim.job_id), ignore_errors=True)
    log.info("job %s succeeded: %s", claim.job_id, ref)
