"""Fixtures of the service tests: a throwaway PostgreSQL database, Redis, real Celery worker processes.

Every session creates its own database on the local PostgreSQL (127.0.0.1:5432) and its own Celery
queue on the local Redis (127.0.0.1:6379), so concurrent runs do not meet.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import get_engine
from app.migrate import alembic_config
from dallmi_core import Corpus, hide_labels, make_tiny_bert, read_corpus

from .helpers import DATA, REDIS, WorkerProcess, make_client, pg_database


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A migrated throwaway PostgreSQL database for the whole session."""
    for url in pg_database():
        command.upgrade(alembic_config(url), "head")
        yield url


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Service settings of the session: PostgreSQL, Redis with a private queue, a temporary artifact folder."""
    return Settings(
        database_url=database_url,
        broker_url=REDIS,
        artifacts_dir=tmp_path_factory.mktemp("artifacts"),
        train_queue=f"train-test-{uuid.uuid4().hex[:8]}",
        visibility_timeout_s=4,
        heartbeat_timeout_s=3,
        predict_batch_wait_ms=50,
        auth="disabled",  # the tests of authentication (test_auth*.py) make their own settings with keys required
        model_roots=[tmp_path_factory.getbasetemp()],  # tiny models and test folders live under pytest's tmp
    )


@pytest.fixture
def db_session(settings: Settings) -> Iterator[Session]:
    """A session whose every commit is rolled back at the end of the test."""
    connection = get_engine(settings.database_url).connect()
    transaction = connection.begin()
    session = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield session
    finally:
        session.close()
        transaction.rollback()
        connection.close()


@pytest.fixture
def client(settings: Settings, db_session: Session) -> Iterator[TestClient]:
    """API client whose database changes are rolled back after the test (no worker sees them)."""
    with make_client(settings, db_session) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def live_client(settings: Settings) -> Iterator[TestClient]:
    """API client that commits for real, so worker processes see its jobs."""
    with make_client(settings) as test_client:
        yield test_client


def _pick_rows(corpus: Corpus, n: int) -> Corpus:
    """The first ``n`` rows, swapping in rows so that every label has a positive."""
    chosen = list(range(n))
    for j in range(len(corpus.labels)):
        if not corpus.y[chosen, j].any():
            chosen[-1 - j] = int(np.flatnonzero(corpus.y[:, j])[0])
    return corpus.subset(sorted(set(chosen)))


@pytest.fixture(scope="session")
def source_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40-row slice of the PubMed source corpus (wide CSV)."""
    path = tmp_path_factory.mktemp("data") / "source40.csv"
    _pick_rows(read_corpus(DATA / "source.csv"), 40).to_wide_csv(path)
    return path


@pytest.fixture(scope="session")
def target_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40-row slice of the PubMed target corpus with half of its positives hidden."""
    path = tmp_path_factory.mktemp("data") / "target40.csv"
    hide_labels(_pick_rows(read_corpus(DATA / "target_train.csv"), 40), 0.5, seed=0).to_wide_csv(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised tiny BERT with the MiniLM tokenizer."""
    return make_tiny_bert(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def worker(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    """One worker for the session (tests that kill it start their own)."""
    process = WorkerProcess(settings, tmp_path_factory.mktemp("logs") / "worker.log").start()
    yield process
    process.stop()
