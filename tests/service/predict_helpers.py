"""Helpers of the prediction tests: a trained tiny version registered without a worker, a gate on scoring."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from app.artifacts import ArtifactStore
from app.config import Settings
from app.db import make_sessionmaker
from app.jobs.orm import SUCCEEDED, Job
from app.models.service import add_trained_version, register_base_model
from dallmi_core import TrainConfig, finetune, read_corpus

from .helpers import TINY_PARAMS


def register_tiny_version(settings: Settings, *, name: str, base_dir: Path, corpus_csv: Path, run_dir: Path) -> str:
    """Fine-tune ``base_dir`` on ``corpus_csv`` for one epoch with dallmi_core and publish it as ``name:1``."""
    config = TrainConfig.from_dict({**TINY_PARAMS, "epochs": 1})
    result = finetune(base=str(base_dir), corpus=read_corpus(corpus_csv), config=config, out_dir=run_dir)
    with make_sessionmaker(settings.database_url)() as session:
        base = register_base_model(
            session, name=f"{name}-base", source=str(base_dir), roots=[Path(base_dir).resolve().parent]
        )
        job = Job(
            kind="finetune", name=name, method="bce", params={**TINY_PARAMS, "epochs": 1},
            base_version_id=base.id, request_hash="0" * 64, status=SUCCEEDED,
        )  # fmt: skip
        session.add(job)
        session.flush()
        version = add_trained_version(
            session, store=ArtifactStore(settings.artifacts_dir), job=job, checkpoint=result.checkpoint_dir
        )
        session.commit()
        return version.ref


class ScoringGate:
    """Holds every forward pass of one loaded version until :meth:`open` (a test-controlled pause).

    It wraps the version's real scoring function; nothing is faked, only delayed.
    """

    def __init__(self, client: TestClient, ref: str) -> None:
        response = client.post("/predict", json={"model": ref, "texts": ["warm the cache"]})
        assert response.status_code == 200, response.text
        (loaded,) = client.app.state.model_cache._models.values()
        self.batcher = loaded.batcher
        self._original = self.batcher._predict
        self._open = threading.Event()
        self.batcher._predict = self._gated

    def _gated(self, texts: list[str]) -> np.ndarray:
        self._open.wait(timeout=60)
        return self._original(texts)

    def open(self) -> None:
        """Let the held and every later forward pass run."""
        self._open.set()
