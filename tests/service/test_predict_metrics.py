"""``GET /metrics``, request ids in JSON logs, no progress bars (issue #9, finding 8).

An embedded-mode database of its own (SQLite), so the job counts it reads are exactly this module's.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.config import Settings
from app.db import make_sessionmaker
from app.jobs.orm import RUNNING, Job
from app.migrate import prestart
from app.models.service import resolve_ref

from .helpers import make_client
from .predict_helpers import register_tiny_version


@pytest.fixture(scope="module")
def home(tmp_path_factory, tiny_model_dir, source_csv) -> tuple[Settings, str]:
    """Embedded settings on a fresh SQLite database holding one trained tiny version."""
    root = tmp_path_factory.mktemp("metrics-home")
    settings = Settings(database_url=f"sqlite:///{root / 'dallmi.db'}", artifacts_dir=root / "artifacts",
                        auth="disabled")
    prestart(settings)
    ref = register_tiny_version(
        settings, name="metrics-model", base_dir=tiny_model_dir, corpus_csv=source_csv, run_dir=root / "run"
    )
    return settings, ref


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_predictions_batches_cache_and_routes_by_template(home):
    settings, ref = home
    with make_client(settings) as client:
        before = _samples(client.get("/metrics").text)
        texts = ["a trial", "a cohort", "a case"]
        assert client.post("/predict", json={"model": ref, "texts": texts}).status_code == 200
        assert client.get("/predict", params={"model": ref, "text": "a review"}).status_code == 200
        assert client.get("/corpora/987654").status_code == 404
        response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    after = _samples(response.text)
    assert _value(after, "dallmi_predict_texts_total") - _value(before, "dallmi_predict_texts_total") == 4
    assert _value(after, "dallmi_predict_batch_texts_count") - _value(before, "dallmi_predict_batch_texts_count") == 2
    assert _value(after, "dallmi_model_cache_loads_total") - _value(before, "dallmi_model_cache_loads_total") == 1
    assert _value(after, "dallmi_model_cache_hits_total") - _value(before, "dallmi_model_cache_hits_total") == 1
    route = {"method": "GET", "route": "/corpora/{corpus_id}", "status": "404"}
    assert _value(after, "dallmi_http_request_duration_seconds_count", **route) >= 1
    assert not any("987654" in dict(labels).get("route", "") for _, labels in after)  # templates, not raw paths
    assert ("dallmi_predict_queue_texts", ()) in after


def test_metrics_read_jobs_by_status_and_training_speed_from_the_database(home):
    settings, ref = home
    with make_sessionmaker(settings.database_url)() as session:
        version = resolve_ref(session, ref=ref, loc=())
        job = Job(
            kind="finetune", name="metrics-running", method="bce", params={"batch_size": 8, "grad_accum": 2},
            base_version_id=version.id, request_hash="1" * 64, status=RUNNING, step=10, total_steps=30, eta_s=40.0,
        )  # fmt: skip
        session.add(job)
        session.commit()
        job_id = job.id
    with make_client(settings) as client:
        samples = _samples(client.get("/metrics").text)
    assert _value(samples, "dallmi_jobs", status="running") == 1
    assert _value(samples, "dallmi_jobs", status="succeeded") == 1  # the job that trained metrics-model
    assert _value(samples, "dallmi_jobs", status="queued") == 0
    # (30 - 10) steps / 40 s * 8 rows * 2 accumulated batches
    assert _value(samples, "dallmi_training_samples_per_second", job_id=str(job_id), kind="finetune") == 8.0


def test_a_request_id_is_echoed_made_when_missing_and_logged_as_json(home, caplog):
    settings, _ = home
    with make_client(settings) as client, caplog.at_level(logging.INFO, logger="dallmi.access"):
        given = client.get("/health", headers={"X-Request-ID": "trace-42.a"})
        made = client.get("/health")
        refused = client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
        handler = next(h for h in logging.getLogger().handlers if h.get_name() == "dallmi-json")
        lines = [json.loads(handler.format(r)) for r in caplog.records if r.name == "dallmi.access"]
    assert given.headers["x-request-id"] == "trace-42.a"
    assert len(made.headers["x-request-id"]) == 32
    assert refused.headers["x-request-id"] != "bad id\twith spaces"
    line = next(line for line in lines if line["request_id"] == "trace-42.a")
    assert line["event"] == "request" and line["route"] == "/health" and line["status"] == 200
    assert {"timestamp", "level", "duration_ms"} <= set(line)


def test_the_api_process_shows_no_progress_bars(home):
    import transformers.utils.logging as transformers_logging

    settings, _ = home
    with make_client(settings):
        assert not transformers_logging.is_progress_bar_enabled()
        assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"


def test_the_worker_logs_json_lines(home, tmp_path: Path):
    from .helpers import WorkerProcess

    settings, _ = home
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    worker.stop()
    lines = [line for line in (tmp_path / "worker.log").read_text().splitlines() if line.startswith("{")]
    ready = [json.loads(line) for line in lines if " ready." in line]
    assert ready and ready[0]["logger"] == "celery.apps.worker" and ready[0]["level"] == "info"
