"""The reaper, worker heartbeats in /ready and timezone-aware timestamps (no worker processes)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from app.config import Settings
from app.db import make_sessionmaker, utcnow
from app.jobs.orm import Job
from app.jobs.reaper import beat_worker, reap_stale_jobs
from app.migrate import prestart
from app.queue import JobQueue
from worker.training import JobBusy, _claim

from .helpers import TINY_PARAMS, make_client
from .test_corpora import WIDE


@pytest.fixture
def submit(client):
    corpus_id = client.post("/corpora", files={"file": ("c.csv", WIDE)}).json()["id"]
    body = {"corpus_id": corpus_id, "base_model": "minilm-l6", "name": "s", "params": TINY_PARAMS}

    def one() -> int:
        return client.post("/finetune", json=body).json()["job_id"]

    return one


def _running(session, job_id: int, *, beat_age_s: float | None, attempts: int = 1, cancel: bool = False) -> Job:
    job = session.get(Job, job_id)
    job.status, job.attempts, job.worker, job.cancel_requested = "running", attempts, "dead:1:abc", cancel
    job.heartbeat_at = None if beat_age_s is None else utcnow() - timedelta(seconds=beat_age_s)
    session.commit()
    return job


def test_the_reaper_queues_again_jobs_with_a_stale_heartbeat_and_leaves_live_ones(client, db_session, submit):
    stale, silent, live = submit(), submit(), submit()
    _running(db_session, stale, beat_age_s=120)
    _running(db_session, silent, beat_age_s=None)
    _running(db_session, live, beat_age_s=5)
    sent: list[int] = []
    reaped = reap_stale_jobs(db_session, enqueue=sent.append, heartbeat_timeout_s=60, max_attempts=3)
    assert sorted(reaped.requeued) == sorted(sent) == sorted([stale, silent])
    for job_id in (stale, silent):
        job = client.get(f"/jobs/{job_id}").json()
        assert job["status"] == "queued" and job["heartbeat_at"] is None and job["attempts"] == 1
    assert client.get(f"/jobs/{live}").json()["status"] == "running"
    again = reap_stale_jobs(db_session, enqueue=sent.append, heartbeat_timeout_s=60, max_attempts=3)
    assert again.requeued == [] and len(sent) == 2  # a second reaper finds nothing to move


def test_a_job_whose_attempts_are_spent_fails_and_a_cancelled_one_is_cancelled(client, db_session, submit):
    spent, cancelled = submit(), submit()
    _running(db_session, spent, beat_age_s=120, attempts=3)
    _running(db_session, cancelled, beat_age_s=120, cancel=True)
    sent: list[int] = []
    reaped = reap_stale_jobs(db_session, enqueue=sent.append, heartbeat_timeout_s=60, max_attempts=3)
    assert reaped.failed == [spent] and reaped.cancelled == [cancelled] and sent == []
    job = client.get(f"/jobs/{spent}").json()
    assert job["status"] == "failed" and "lost 3 times" in job["error"] and "DALLMI_MAX_ATTEMPTS" in job["error"]
    assert client.get(f"/jobs/{cancelled}").json()["status"] == "cancelled"
    assert client.post(f"/jobs/{spent}/retry").status_code == 202  # a retry grants one more run


def test_a_job_the_broker_refused_stays_for_the_next_pass(client, db_session, submit):
    job_id = submit()
    _running(db_session, job_id, beat_age_s=120)

    def down(_job_id: int) -> None:
        raise ConnectionError("broker down")

    assert reap_stale_jobs(db_session, enqueue=down, heartbeat_timeout_s=60, max_attempts=3).requeued == []
    assert client.get(f"/jobs/{job_id}").json()["status"] == "running"
    sent: list[int] = []
    assert reap_stale_jobs(db_session, enqueue=sent.append, heartbeat_timeout_s=60, max_attempts=3).requeued == [job_id]


def test_ready_is_503_naming_the_worker_until_one_sends_a_heartbeat(settings: Settings, db_session):
    private = settings.model_copy(update={"train_queue": "no-worker-here"})
    with make_client(private, db_session) as client:
        response = client.get("/ready")
        assert response.status_code == 503
        assert [item["loc"] for item in response.json()["detail"]] == [["worker"]]
        assert "no training worker" in response.json()["detail"][0]["msg"]
        beat_worker(db_session, worker_id="w:1:x", hostname="w", pid=1, queue="no-worker-here", job_id=None)
        response = client.get("/ready")
        assert response.status_code == 200 and response.json()["checks"]["worker"] == "ok"


@pytest.fixture
def sqlite_settings(tmp_path) -> Settings:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'dallmi.db'}", broker_url="filesystem://",
                        artifacts_dir=tmp_path / "artifacts", ready_requires_worker=False, auth="disabled")  # fmt: skip
    prestart(settings)
    return settings


def test_sqlite_timestamps_are_aware_and_the_heartbeat_check_works(sqlite_settings: Settings):
    with make_client(sqlite_settings) as client:
        corpus_id = client.post("/corpora", files={"file": ("c.csv", WIDE)}).json()["id"]
        body = {"corpus_id": corpus_id, "base_model": "minilm-l6", "name": "s", "params": TINY_PARAMS}
        job_id = client.post("/finetune", json=body).json()["job_id"]
        sessions = make_sessionmaker(sqlite_settings.database_url)
        with sessions() as session:
            _running(session, job_id, beat_age_s=1)
        with sessions() as session:
            stored = session.get(Job, job_id)
            assert stored.heartbeat_at.tzinfo is not None and stored.created_at.tzinfo is not None
            with pytest.raises(JobBusy):  # was: TypeError, naive against aware
                _claim(session, job_id, heartbeat_timeout_s=60, worker_id="w:2:y")
        job = client.get(f"/jobs/{job_id}").json()
    for field in ("created_at", "heartbeat_at"):
        parsed = datetime.fromisoformat(job[field])
        assert parsed.utcoffset() == timedelta(0), job[field]
    assert abs(parsed - datetime.now(timezone.utc)) < timedelta(minutes=5)


def test_a_job_queued_again_is_delivered_before_jobs_that_never_started(settings: Settings):
    private = settings.model_copy(update={"train_queue": f"priority-{uuid.uuid4().hex[:6]}"})
    queue = JobQueue(private)
    queue.send_train(1)
    queue.send_train(2)
    queue.send_resume(3)
    order = []
    with queue.celery.connection_for_read() as connection:
        simple = connection.SimpleQueue(private.train_queue)
        for _ in range(3):
            message = simple.get(timeout=10)
            order.append(message.payload[0][0])
            message.ack()
        simple.close()
    assert order == [3, 1, 2]
