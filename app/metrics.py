"""Prometheus metrics of the API process and the ``GET /metrics`` route.

Counters and histograms updated as requests happen live in prometheus-client's default registry (one set
per process). Figures that live elsewhere are read at scrape time by :class:`ServiceCollector`: jobs by
status and the training throughput of running jobs from the database (the worker writes its progress to
the job row; ``samples/s = (total_steps - step) / eta_s * batch_size * grad_accum``, i.e. the run's mean
step rate, since dallmi_core's ETA is ``elapsed / steps_done * steps_left``), and the prediction queue
depth from the app's model cache. With ``uvicorn --workers N`` each API process has its own counters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.jobs.orm import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, Job
from dallmi_core import TrainConfig

if TYPE_CHECKING:
    from app.predict.cache import ModelCache

JOB_STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)

REQUEST_SECONDS = Histogram(
    "dallmi_http_request_duration_seconds",
    "Time from request to the end of the response, by route template (not raw path), method and status.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
PREDICT_TEXTS = Counter("dallmi_predict_texts", "Texts scored by /predict (requests answered 200).")
PREDICT_BATCH_TEXTS = Histogram(
    "dallmi_predict_batch_texts",
    "Texts per forward pass of the prediction micro-batcher.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
PREDICT_REJECTED = Counter("dallmi_predict_rejected", "Prediction requests refused with 503 (queue full).")
MODEL_CACHE_HITS = Counter("dallmi_model_cache_hits", "Predictions whose version was already loaded.")
MODEL_CACHE_LOADS = Counter("dallmi_model_cache_loads", "Versions loaded into the prediction cache.")


def _samples_per_s(job: Job) -> float | None:
    if not job.eta_s or job.step <= 0 or job.total_steps <= job.step:
        return None
    try:
        config = TrainConfig.from_dict(job.params or {})
    except Exception:  # a stored job with parameters this version rejects: no figure
        return None
    return (job.total_steps - job.step) / job.eta_s * config.batch_size * config.grad_accum


class ServiceCollector(Collector):
    """Scrape-time gauges: jobs by status, samples/s of running jobs, texts waiting for scoring."""

    def __init__(self, sessions: Callable[[], Session], cache: ModelCache) -> None:
        self.sessions, self.cache = sessions, cache

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Read the database and the model cache now."""
        jobs = GaugeMetricFamily("dallmi_jobs", "Jobs by status (read from the database).", labels=["status"])
        speed = GaugeMetricFamily(
            "dallmi_training_samples_per_second",
            "Training rows per second of each running job (from the progress the worker writes).",
            labels=["job_id", "kind"],
        )
        with self.sessions() as session:
            counts = {status: n for status, n in session.execute(select(Job.status, func.count()).group_by(Job.status))}
            running = session.scalars(select(Job).where(Job.status == RUNNING)).all()
            for job in running:
                if (value := _samples_per_s(job)) is not None:
                    speed.add_metric([str(job.id), job.kind], value)
        for status in JOB_STATUSES:
            jobs.add_metric([status], counts.get(status, 0))
        yield jobs
        yield speed
        yield GaugeMetricFamily(
            "dallmi_predict_queue_texts", "Texts waiting for or in scoring.", value=self.cache.pending_texts()
        )


router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def prometheus_metrics(request: Request) -> Response:
    """Prometheus text exposition: request latencies, prediction, model cache, jobs, training speed."""
    registry: CollectorRegistry = request.app.state.metrics_registry
    body = generate_latest(REGISTRY) + generate_latest(registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def make_registry(sessions: Callable[[], Session], cache: ModelCache) -> CollectorRegistry:
    """A registry of this app's scrape-time collector (kept apart from the process-wide one)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceCollector(sessions, cache))
    return registry
