"""The embedded mode of ``dallmi serve``: SQLite and the filesystem broker, with a real worker."""

from __future__ import annotations

import pytest

from app.config import Settings
from app.migrate import prestart

from .helpers import TINY_PARAMS, WorkerProcess, make_client, upload, wait_job

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
            assert client.get("/ready").status_code == 200
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
