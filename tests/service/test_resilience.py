"""Cancellation, a worker killed mid-job, failure and retry — with real worker processes."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from app.corpora.orm import Corpus
from app.db import make_sessionmaker

from .helpers import TINY_PARAMS, WorkerProcess, make_client, upload, wait_for, wait_job

pytestmark = pytest.mark.slow
LONG = {**TINY_PARAMS, "epochs": 40}


@pytest.fixture(scope="module")
def tiny(live_client, tiny_model_dir) -> str:
    response = live_client.post("/models/base", json={"name": "tiny-r", "source": str(tiny_model_dir)})
    assert response.status_code in (201, 409)
    return "tiny-r"


def _finetune(client, corpus_id: int, base: str, name: str, params: dict) -> int:
    body = {"corpus_id": corpus_id, "base_model": base, "name": name, "params": params}
    response = client.post("/finetune", json=body)
    assert response.status_code == 202, response.text
    return response.json()["job_id"]


def test_cancelling_a_running_job_stops_it_and_keeps_no_version(live_client, worker, tiny, source_csv, settings):
    corpus = upload(live_client, source_csv)
    job_id = _finetune(live_client, corpus["id"], tiny, "cancelled-model", LONG)
    wait_for(lambda: live_client.get(f"/jobs/{job_id}").json()["progress"]["step"] > 0, timeout=120, what="steps")
    response = live_client.delete(f"/jobs/{job_id}")
    assert response.status_code == 202 and response.json()["cancel_requested"] is True
    job = wait_job(live_client, job_id, ("cancelled", "succeeded", "failed"), timeout=60)
    assert job["status"] == "cancelled" and job["result_version"] is None
    assert job["progress"]["epoch"] < LONG["epochs"]
    assert live_client.get("/models/cancelled-model").status_code == 404
    assert not (settings.artifacts_dir / "jobs" / str(job_id)).exists()
    assert not (settings.artifacts_dir / "models" / "cancelled-model").exists()


def _private(settings, name: str):
    """Own queue; a visibility timeout far past the test, so only the reaper can rescue a job."""
    queue = f"train-{name}-{uuid.uuid4().hex[:6]}"
    return settings.model_copy(update={"train_queue": queue, "visibility_timeout_s": 3600})


def test_a_killed_worker_loses_nothing(settings, tiny, source_csv, tmp_path):
    """SIGKILL mid-job: the reaper of the next worker queues it again; training resumes from its last epoch."""
    private = _private(settings, "kill")
    params = {**TINY_PARAMS, "epochs": 12}
    with make_client(private) as client:
        corpus = upload(client, source_csv)
        first = WorkerProcess(private, tmp_path / "first.log").start()
        job_id = _finetune(client, corpus["id"], tiny, "survivor", params)
        # Epoch 2's metrics mean epoch 1's state is saved (dallmi_core reports an epoch before saving it).
        wait_for(lambda: len(client.get(f"/jobs/{job_id}").json()["metrics"]) >= 2, timeout=120, what="2 epochs")
        first.kill()
        killed = client.get(f"/jobs/{job_id}").json()
        assert killed["status"] == "running", "the job finished before the worker was killed"
        assert datetime.fromisoformat(killed["heartbeat_at"]) > datetime.now(timezone.utc) - timedelta(seconds=30)
        second = WorkerProcess(private, tmp_path / "second.log").start()
        try:
            job = wait_job(client, job_id, ("succeeded", "failed"), timeout=180)
        finally:
            second.stop()
    assert job["status"] == "succeeded", job["error"]
    assert job["attempts"] == 2 and job["result_version"] == "survivor:1"
    epochs = [m["epoch"] for m in job["metrics"]]
    assert epochs == list(range(1, 13))
    by_first = [m["epoch"] for m in job["metrics"] if m["attempt"] == 1]
    assert by_first == list(range(1, len(by_first) + 1)) and len(by_first) >= 1
    assert all(m["attempt"] == 2 for m in job["metrics"][len(by_first) :])  # resumed, not restarted


def test_a_failed_job_records_its_error_and_can_be_retried(live_client, worker, tiny, source_csv, settings):
    corpus = upload(live_client, source_csv)
    with make_sessionmaker(settings.database_url)() as session:
        stored = settings.artifacts_dir / session.scalar(select(Corpus.path).where(Corpus.id == corpus["id"]))
    hidden = stored.with_suffix(".hidden")
    stored.rename(hidden)
    job_id = _finetune(live_client, corpus["id"], tiny, "retried", TINY_PARAMS)
    job = wait_job(live_client, job_id, ("succeeded", "failed"))
    assert job["status"] == "failed" and "no such file" in job["error"]
    hidden.rename(stored)
    response = live_client.post(f"/jobs/{job_id}/retry")
    assert response.status_code == 202 and response.json()["status"] == "queued"
    job = wait_job(live_client, job_id, ("succeeded", "failed"))
    assert job["status"] == "succeeded" and job["attempts"] == 2 and job["error"] is None


def test_a_warm_shutdown_pauses_the_job_at_a_step_and_queues_it_again(settings, tiny, source_csv, tmp_path):
    """SIGTERM mid-job: the job stops at its next step with its state saved there, back to queued (not
    cancelled, no attempt spent); the next worker finishes it with every epoch run once."""
    private = _private(settings, "warm")
    params = {**TINY_PARAMS, "epochs": 30}
    with make_client(private) as client:
        corpus = upload(client, source_csv)
        first = WorkerProcess(private, tmp_path / "first.log").start()
        job_id = _finetune(client, corpus["id"], tiny, "paused", params)
        wait_for(lambda: len(client.get(f"/jobs/{job_id}").json()["metrics"]) >= 2, timeout=120, what="2 epochs")
        first.stop()
        assert first.proc is not None and first.proc.returncode == 0  # stopped by itself, not killed
        paused = client.get(f"/jobs/{job_id}").json()
        assert paused["status"] == "queued", paused
        assert paused["attempts"] == 0 and not paused["cancel_requested"] and paused["heartbeat_at"] is None
        state = json.loads((private.artifacts_dir / "jobs" / str(job_id) / "state" / "state.json").read_text())
        assert state["step"] >= paused["progress"]["step"] > 0  # saved at the step it stopped, not an epoch before
        second = WorkerProcess(private, tmp_path / "second.log").start()
        try:
            job = wait_job(client, job_id, ("succeeded", "failed"), timeout=240)
        finally:
            second.stop()
    assert job["status"] == "succeeded", job["error"]
    assert job["attempts"] == 1 and job["result_version"] == "paused:1"
    assert [m["epoch"] for m in job["metrics"]] == list(range(1, 31))
