"""``dallmi serve``'s supervision of its training worker: restart it when it dies, stop it warmly.

A thread waits on the worker subprocess; when it exits without being asked to, it is started again after
a back-off that doubles from 1 s to ``supervisor_backoff_max_s`` while the worker keeps dying young (it
resets once a worker lived a minute). The worker gets ``DALLMI_SUPERVISOR_PID``: if this process is
killed outright (SIGKILL), the orphaned worker notices within a heartbeat, pauses its job and exits.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import time
from collections.abc import Sequence

from worker.liveness import SUPERVISOR_ENV

log = logging.getLogger(__name__)

HEALTHY_AFTER_S = 60.0
"""A worker that lived this long resets the back-off."""


class WorkerSupervisor:
    """Runs ``command`` as a subprocess and keeps it running until :meth:`stop`."""

    def __init__(self, command: Sequence[str], *, backoff_max_s: float = 60.0, stop_timeout_s: float = 120.0,
                 env: dict[str, str] | None = None) -> None:  # fmt: skip
        self.command, self.backoff_max_s, self.stop_timeout_s = list(command), backoff_max_s, stop_timeout_s
        self.env = {**(env if env is not None else os.environ), SUPERVISOR_ENV: str(os.getpid())}
        self.proc: subprocess.Popen | None = None
        self.restarts = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> WorkerSupervisor:
        """Start the worker and the thread that restarts it."""
        self._spawn()
        self._thread = threading.Thread(target=self._watch, name="dallmi-supervisor", daemon=True)
        self._thread.start()
        return self

    def _spawn(self) -> None:
        with self._lock:
            if not self._stopping.is_set():
                self.proc = subprocess.Popen(self.command, env=self.env)

    def _watch(self) -> None:
        backoff = 1.0
        while not self._stopping.is_set():
            proc = self.proc
            assert proc is not None
            started = time.monotonic()
            code = proc.wait()
            if self._stopping.is_set():
                return
            lived = time.monotonic() - started
            backoff = 1.0 if lived >= HEALTHY_AFTER_S else backoff
            log.warning("training worker (pid %s) exited with %s after %.0f s; restarting in %.0f s",
                        proc.pid, code, lived, backoff)  # fmt: skip
            if self._stopping.wait(backoff):
                return
            backoff = min(backoff * 2, self.backoff_max_s)
            self.restarts += 1
            self._spawn()

    def stop(self) -> None:
        """Warm shutdown: SIGTERM (the worker pauses its job and queues it again), SIGKILL after the timeout."""
        with self._lock:
            self._stopping.set()
            proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._thread is not None:
            self._thread.join(timeout=5)
