"""Worker liveness and the reaper: the jobs of dead workers are queued again (or failed) in bounded time.

Every training worker writes two heartbeats every few seconds from a thread of its own (see
``worker.liveness``): one on its ``workers`` row (read by ``/ready``) and one on the job it holds. The same
thread runs :func:`reap_stale_jobs`, so the reaper runs wherever a worker runs, in both modes, without a
scheduler. Every change here is a conditional ``UPDATE``: concurrent reapers of several workers never move
one job twice, and a job is only ever claimed again through the worker's ``_claim``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from app.db import rowcount, utcnow
from app.jobs.orm import CANCELLED, FAILED, QUEUED, RUNNING, Job, WorkerBeat

log = logging.getLogger(__name__)

Enqueue = Callable[[int], None]
FORGET_WORKERS_AFTER = timedelta(days=1)


@dataclass
class Reaped:
    """What one pass of the reaper did, by job id."""

    requeued: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)


def _stale(job_id: int, before: datetime) -> tuple:
    return Job.id == job_id, Job.status == RUNNING, or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < before)


def _move(session: Session, job_id: int, before: datetime, *where, **values) -> bool:
    """One conditional update of a stale job, committed; True when this reaper won it."""
    moved = rowcount(session.execute(update(Job).where(*_stale(job_id, before), *where).values(worker=None, **values)))
    session.commit()
    return bool(moved)


def reap_stale_jobs(session: Session, *, enqueue: Enqueue, heartbeat_timeout_s: float, max_attempts: int) -> Reaped:
    """Queue again every running job whose heartbeat is older than ``heartbeat_timeout_s``.

    A job whose cancel was requested becomes ``cancelled``; one that already started ``max_attempts`` runs
    becomes ``failed`` (``POST /jobs/{id}/retry`` grants one more); the others go back to ``queued`` and
    their task is sent again. When the broker refuses it, the job is left running with no heartbeat, so
    the next pass tries again.
    """
    before = utcnow() - timedelta(seconds=heartbeat_timeout_s)
    ids = session.scalars(
        select(Job.id).where(Job.status == RUNNING, or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < before))
    ).all()
    session.commit()
    reaped = Reaped()
    for job_id in ids:
        if _move(session, job_id, before, Job.cancel_requested.is_(True), status=CANCELLED, finished_at=utcnow()):
            reaped.cancelled.append(job_id)
            continue
        error = (f"its worker was lost {max_attempts} times (DALLMI_MAX_ATTEMPTS); "
                 f"POST /jobs/{job_id}/retry runs it again from its last saved state")
        if _move(session, job_id, before, Job.attempts >= max_attempts, status=FAILED, error=error,
                 finished_at=utcnow()):  # fmt: skip
            reaped.failed.append(job_id)
            continue
        if not _move(session, job_id, before, status=QUEUED, heartbeat_at=None):
            continue  # another reaper, or its worker, got there first
        try:
            enqueue(job_id)
        except Exception:  # broker down: leave it to the next pass
            log.exception("could not queue job %s again", job_id)
            session.execute(update(Job).where(Job.id == job_id, Job.status == QUEUED).values(status=RUNNING))
            session.commit()
            continue
        reaped.requeued.append(job_id)
    if ids:
        log.warning("reaper: requeued %s, failed %s, cancelled %s", reaped.requeued, reaped.failed, reaped.cancelled)
    return reaped


def beat_worker(session: Session, *, worker_id: str, hostname: str, pid: int, queue: str, job_id: int | None) -> None:
    """Write the worker's heartbeat (inserting its row on the first beat) and commit."""
    now = utcnow()
    updated = rowcount(
        session.execute(update(WorkerBeat).where(WorkerBeat.id == worker_id).values(heartbeat_at=now, job_id=job_id))
    )
    if not updated:
        session.add(WorkerBeat(id=worker_id, hostname=hostname, pid=pid, queue=queue, job_id=job_id,
                               started_at=now, heartbeat_at=now))  # fmt: skip
    session.execute(delete(WorkerBeat).where(WorkerBeat.heartbeat_at < now - FORGET_WORKERS_AFTER))
    session.commit()


def beat_job(session: Session, *, job_id: int, worker_id: str, attempt: int) -> bool:
    """Refresh the heartbeat of a job this worker holds; False when the claim is no longer its own."""
    held = rowcount(
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == RUNNING, Job.worker == worker_id, Job.attempts == attempt)
            .values(heartbeat_at=utcnow())
        )
    )
    session.commit()
    return bool(held)


def forget_worker(session: Session, *, worker_id: str) -> None:
    """Remove a worker's row (on its warm shutdown)."""
    session.execute(delete(WorkerBeat).where(WorkerBeat.id == worker_id))
    session.commit()


def live_workers(session: Session, *, queue: str, heartbeat_timeout_s: float) -> int:
    """How many workers of ``queue`` sent a heartbeat within ``heartbeat_timeout_s``."""
    since = utcnow() - timedelta(seconds=heartbeat_timeout_s)
    live = (WorkerBeat.queue == queue, WorkerBeat.heartbeat_at >= since)
    query = select(func.count()).select_from(WorkerBeat).where(*live)
    return session.scalar(query) or 0
