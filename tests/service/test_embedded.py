"""The embedded mode of ``dallmi serve``: SQLite and the filesystem broker, with a real worker."""

from __future__ import annotations

import os
import signal

import httpx
import pytest

from app.config import Settings
from app.db import make_sessionmaker
from app.jobs.orm import Job
from app.migrate import prestart

from .helpers import TINY_PARAMS, ServeProcess, WorkerProcess, make_client, upload, wait_for, wait_job

pytestmark = pytest.mark.slow


def test_finetune_and_predict_with_sqlite_and_a_filesystem_broker(tmp_path, tiny_model_dir, source_csv):
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'home' / 'dallmi.db'}",
        broker_url="filesystem://",
        artifacts_dir=tmp_path / "home" / "artifacts",
        auth="disabled",
        model_roots=[tiny_model_dir.parent],
    )
    prestart(settings)
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        with make_client(settings) as client:
            wait_for(lambda: client.get("/ready").status_code == 200, timeout=30, what="a worker heartbeat")
            assert client.get("/models/minilm-l6").status_code == 200
            assert client.post("/models/base", json={"name": "tiny", "source": str(tiny_model_dir)}).status_code == 201
            corpus = upload(client, source_csv)
            body = {"corpus_id": corpus["id"], "base_model": "tiny", "name": "local", "params": TINY_PARAMS}
            job_id = client.post("/finetune", json=body).json()["job_id"]
            job = wait_job(client, job_id, ("succeeded", "failed"), timeout=240)
            assert job["status"] == "succeeded", job["error"]
            response = client.get("/predict", params={"model": "local", "text": "a clinical trial"})
            assert response.status_code == 200 and len(response.json()["results"][0]["scores"]) == 14
    finally:
        worker.stop()


def _job_row(database_url: str, job_id: int) -> Job:
    with make_sessionmaker(database_url)() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def test_dallmi_serve_restarts_a_killed_worker_and_survives_its_own_restart_mid_job(
    tmp_path, tiny_model_dir, source_csv
):
    """The worker SIGKILLed mid-job: restarted, the job queued again by the reaper and resumed. Then
    ``dallmi serve`` itself SIGTERMed mid-job and started again: the job pauses, waits queued, finishes."""
    home = tmp_path / "home"
    first = ServeProcess(home, tmp_path / "serve1.log").start()
    try:
        with httpx.Client(base_url=first.url, timeout=30) as client:
            assert client.post("/models/base", json={"name": "tiny", "source": str(tiny_model_dir)}).status_code == 201
            corpus = upload(client, source_csv)
            body = {"corpus_id": corpus["id"], "base_model": "tiny", "name": "local",
                    "params": {**TINY_PARAMS, "epochs": 30}}  # fmt: skip
            job_id = client.post("/finetune", json=body).json()["job_id"]
            wait_for(lambda: client.get(f"/jobs/{job_id}").json()["progress"]["step"] > 0, timeout=180, what="steps")
            worker = _job_row(first.database_url, job_id).worker
            assert worker is not None
            os.kill(int(worker.split(":")[1]), signal.SIGKILL)

            def resumed() -> bool:
                job = client.get(f"/jobs/{job_id}").json()
                return job["status"] == "running" and job["attempts"] == 2

            wait_for(resumed, timeout=180, what="the job resumed by a restarted worker", interval=0.5)
            assert first.proc is not None and first.proc.poll() is None
        assert first.signal(signal.SIGTERM) is not None
        row = _job_row(first.database_url, job_id)
        assert row.status == "queued" and row.attempts == 1 and row.heartbeat_at is None, (row.status, row.attempts)
    finally:
        if first.proc is not None and first.proc.poll() is None:
            first.proc.kill()
    second = ServeProcess(home, tmp_path / "serve2.log").start()
    try:
        with httpx.Client(base_url=second.url, timeout=30) as client:
            job = wait_job(client, job_id, ("succeeded", "failed", "cancelled"), timeout=300)
            assert job["status"] == "succeeded", job["error"]
            assert [m["epoch"] for m in job["metrics"]] == list(range(1, 31))
            versions = client.get("/models/local").json()
            assert [v["version"] for v in versions["versions"]] == [1], versions
    finally:
        second.signal(signal.SIGTERM)
