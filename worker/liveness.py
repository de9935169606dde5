"""A training worker's liveness thread: its heartbeats, the reaper, the warm-shutdown flag.

One thread per worker process, started when the worker is ready (``worker_ready``) and stopped at its
shutdown. Every ``Settings.beat_every_s`` seconds it writes the worker's heartbeat, the heartbeat of the
job the worker holds (so a long evaluation or model load never looks like a dead worker), and runs
:func:`app.jobs.reaper.reap_stale_jobs`. It is a thread, not the training loop, because the loop may
block for minutes; a worker process that dies takes both with it, which is exactly what the heartbeat
must show.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.jobs import reaper
from app.jobs.reaper import Enqueue

log = logging.getLogger(__name__)

SUPERVISOR_ENV = "DALLMI_SUPERVISOR_PID"
"""Set by ``dallmi serve`` on its worker: the worker pauses its job and exits when that process is gone."""


@dataclass
class Held:
    """The job a worker runs now; ``lost`` is set when its claim passed to another worker."""

    job_id: int
    attempt: int
    lost: threading.Event = field(default_factory=threading.Event)


class Liveness:
    """Heartbeats and the reaper of one worker process (see the module docstring)."""

    def __init__(self, *, sessions: sessionmaker[Session], settings: Settings, enqueue: Enqueue) -> None:
        self.sessions, self.settings, self.enqueue = sessions, settings, enqueue
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.shutdown = threading.Event()
        """Set when the worker begins a warm shutdown: its job pauses at the next training step."""
        self._held: Held | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._supervisor = int(os.environ.get(SUPERVISOR_ENV) or 0) or None

    @contextlib.contextmanager
    def holding(self, job_id: int, attempt: int) -> Iterator[Held]:
        """Mark ``job_id`` (claimed as ``attempt``) as this worker's job while the block runs."""
        held = Held(job_id, attempt)
        self._held = held
        try:
            yield held
        finally:
            self._held = None

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="dallmi-liveness", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread and remove the worker's row."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with contextlib.suppress(Exception), self.sessions() as session:
            reaper.forget_worker(session, worker_id=self.worker_id)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # a database hiccup must not end the heartbeats
                log.exception("worker heartbeat failed")
            self._stop.wait(self.settings.beat_every_s)

    def tick(self) -> None:
        """One round: the job's and the worker's heartbeats, a pass of the reaper, the supervisor check."""
        held, settings = self._held, self.settings
        with self.sessions() as session:
            if held is not None and not reaper.beat_job(
                session, job_id=held.job_id, worker_id=self.worker_id, attempt=held.attempt
            ):
                log.warning("job %s was taken over by another worker; dropping it", held.job_id)
                held.lost.set()
            reaper.beat_worker(
                session, worker_id=self.worker_id, hostname=socket.gethostname(), pid=os.getpid(),
                queue=settings.train_queue, job_id=held.job_id if held is not None else None,
            )  # fmt: skip
            reaper.reap_stale_jobs(
                session, enqueue=self.enqueue, heartbeat_timeout_s=settings.heartbeat_timeout_s,
                max_attempts=settings.max_attempts,
            )  # fmt: skip
        if self._supervisor is not None and os.getppid() != self._supervisor and not self.shutdown.is_set():
            log.warning("the supervising dallmi serve (pid %s) is gone: warm shutdown", self._supervisor)
            os.kill(os.getpid(), signal.SIGTERM)  # Celery's own warm shutdown, which pauses the job
