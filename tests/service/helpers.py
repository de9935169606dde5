"""Helpers of the service tests: throwaway databases, clients, uploads, worker processes, polling."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.config import Settings, get_settings
from app.db import get_engine, get_session
from app.main import create_app

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data" / "pubmed"
PG_ADMIN = os.environ.get("DALLMI_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("DALLMI_TEST_REDIS", "redis://127.0.0.1:6379/0")


def pg_database() -> Iterator[str]:
    """Create a throwaway database, yield its SQLAlchemy URL, drop it afterwards."""
    name = f"dallmi_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    url = f"{base}/{name}"
    try:
        yield url
    finally:
        get_engine(url).dispose()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_client(settings: Settings, session: Session | None = None) -> TestClient:
    """A test client of a fresh app with these settings (and this session, when given)."""
    app = create_app()
    app.dependency_overrides[get_settings] = lambda: settings
    if session is not None:
        app.dependency_overrides[get_session] = lambda: session
    return TestClient(app)


TINY_PARAMS = {"epochs": 2, "batch_size": 8, "max_length": 32, "eval_batch_size": 64, "min_steps": 0}


def upload(client: TestClient, path: Path, name: str | None = None) -> dict:
    """Upload a corpus file and return its JSON (asserting 201)."""
    with path.open("rb") as handle:
        response = client.post("/corpora", files={"file": (path.name, handle)}, data={"name": name or path.stem})
    assert response.status_code == 201, response.text
    return response.json()


class WorkerProcess:
    """A real ``celery worker --pool solo`` subprocess on the session's queue."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings, self.log_path = settings, log_path
        self.proc: subprocess.Popen | None = None

    def env(self) -> dict[str, str]:
        """The worker's environment: the test settings as DALLMI_* variables."""
        values = {
            "DALLMI_DATABASE_URL": self.settings.database_url,
            "DALLMI_BROKER_URL": self.settings.broker_url,
            "DALLMI_ARTIFACTS_DIR": str(self.settings.artifacts_dir),
            "DALLMI_TRAIN_QUEUE": self.settings.train_queue,
            "DALLMI_VISIBILITY_TIMEOUT_S": str(self.settings.visibility_timeout_s),
            "DALLMI_HEARTBEAT_TIMEOUT_S": str(self.settings.heartbeat_timeout_s),
        }
        return {**os.environ, **values, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}

    def start(self) -> WorkerProcess:
        """Start the worker and wait until it consumes."""
        from app.cli import worker_command

        command_line = [*worker_command(self.settings.train_queue), "-n", f"test-{uuid.uuid4().hex[:6]}@%h"]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(command_line, cwd=REPO, env=self.env(), stdout=log, stderr=log)
        wait_for(lambda: b" ready." in self.log_path.read_bytes(), timeout=120, what="worker ready")
        return self

    def kill(self) -> None:
        """SIGKILL: the worker dies mid-job without acknowledging."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        """Warm shutdown."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait_for(predicate: Callable[[], object], *, timeout: float, what: str, interval: float = 0.1):
    """Poll until ``predicate()`` is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_job(client: TestClient, job_id: int, statuses: tuple[str, ...], timeout: float = 180) -> dict:
    """Poll ``GET /jobs/{id}`` until its status is one of ``statuses``."""

    def check() -> dict | None:
        job = client.get(f"/jobs/{job_id}").json()
        return job if job["status"] in statuses else None

    return wait_for(check, timeout=timeout, what=f"job {job_id} to reach {statuses}", interval=0.2)


def free_port() -> int:
    """A TCP port nobody listens on now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServeProcess:
    """A real ``dallmi serve`` (API + supervised worker) in the embedded mode, under ``home``."""

    def __init__(self, home: Path, log_path: Path, *, heartbeat_timeout_s: float = 3) -> None:
        self.home, self.log_path, self.port = home, log_path, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database_url = f"sqlite:///{home / 'dallmi.db'}"
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.proc: subprocess.Popen | None = None

    def env(self) -> dict[str, str]:
        """SQLite, the filesystem broker and a short heartbeat timeout."""
        values = {
            "DALLMI_DATABASE_URL": self.database_url,
            "DALLMI_BROKER_URL": "filesystem://",
            "DALLMI_ARTIFACTS_DIR": str(self.home / "artifacts"),
            "DALLMI_HEARTBEAT_TIMEOUT_S": str(self.heartbeat_timeout_s),
            "DALLMI_SUPERVISOR_BACKOFF_MAX_S": "2",
            "DALLMI_MODEL_ROOTS": str(Path(tempfile.gettempdir()).resolve()),  # pytest's tmp folders are there
        }
        return {**os.environ, **values, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}

    def start(self, *, ready_timeout: float = 180) -> ServeProcess:
        """Start ``dallmi serve`` and wait until ``/ready`` (a live worker included) answers 200."""
        import httpx

        command_line = [sys.executable, "-m", "app.cli", "serve", "--port", str(self.port)]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(command_line, cwd=REPO, env=self.env(), stdout=log, stderr=log)

        def ready() -> bool:
            try:
                return httpx.get(f"{self.url}/ready", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout=ready_timeout, what="dallmi serve ready", interval=0.5)
        return self

    def signal(self, signum: int, timeout: float = 120) -> int:
        """Send ``signum`` to the serve process and wait for it to exit; its exit code."""
        assert self.proc is not None
        self.proc.send_signal(signum)
        return self.proc.wait(timeout=timeout)
