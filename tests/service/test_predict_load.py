"""Prediction under concurrency: no database connection held while scoring; a full queue answers 503.

Real concurrency: many requests in flight at once on the app's event loop (a thread each through the test
client), a real PostgreSQL pool kept small on purpose, a trained tiny model. Scoring is held by a gate
(the real forward pass, delayed) so that every request is waiting for it at the same moment.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from app.db import get_session

from .helpers import make_client, wait_for
from .predict_helpers import ScoringGate, register_tiny_version

pytestmark = pytest.mark.slow

CLIENTS = 8


@pytest.fixture(scope="module")
def version(settings, tiny_model_dir, source_csv, tmp_path_factory) -> str:
    """A trained tiny version, ``predict-load:1``."""
    run_dir = tmp_path_factory.mktemp("predict-load-run")
    return register_tiny_version(
        settings, name="predict-load", base_dir=tiny_model_dir, corpus_csv=source_csv, run_dir=run_dir
    )


def _fire(client, ref: str, n: int, pool: ThreadPoolExecutor) -> list[Future]:
    body = {"model": ref, "texts": ["A randomised trial of a new treatment for heart failure in older adults."]}
    return [pool.submit(client.post, "/predict", json=body) for _ in range(n)]


def test_requests_waiting_for_scoring_hold_no_database_connection(settings, version):
    engine = create_engine(settings.database_url, pool_size=2, max_overflow=0, pool_timeout=5)
    small_pool = sessionmaker(bind=engine, expire_on_commit=False)

    def session_from_small_pool() -> Iterator[Session]:
        with small_pool() as session:
            yield session

    try:
        with make_client(settings) as client, ThreadPoolExecutor(CLIENTS) as pool:
            client.app.dependency_overrides[get_session] = session_from_small_pool
            gate = ScoringGate(client, version)
            futures = _fire(client, version, CLIENTS, pool)
            try:
                # every request has resolved its model and waits for scoring; none waits for the pool
                wait_for(lambda: getattr(gate.batcher, "pending_texts", 0) == CLIENTS, timeout=20, what="8 queued")
                assert engine.pool.checkedout() == 0
            finally:
                gate.open()
            responses = [f.result(timeout=60) for f in futures]
        assert [r.status_code for r in responses] == [200] * CLIENTS, [r.text for r in responses]
        assert all(len(r.json()["results"][0]["scores"]) == 14 for r in responses)
    finally:
        engine.dispose()


def test_a_full_prediction_queue_answers_503_with_retry_after(settings, version):
    small_queue = settings.model_copy(update={"predict_queue_texts": 4})
    with make_client(small_queue) as client, ThreadPoolExecutor(10) as pool:
        gate = ScoringGate(client, version)
        futures = _fire(client, version, 10, pool)
        try:
            wait_for(lambda: sum(f.done() for f in futures) >= 6, timeout=10, what="6 requests refused")
        finally:
            gate.open()
        responses = [f.result(timeout=60) for f in futures]
        metrics = client.get("/metrics").text
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 4 + [503] * 6
    for response in responses:
        if response.status_code == 503:
            assert int(response.headers["Retry-After"]) >= 1
            (item,) = response.json()["detail"]
            assert item["type"] == "overloaded" and "queue is full" in item["msg"]
    assert "dallmi_predict_rejected_total" in metrics
