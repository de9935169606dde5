"""Liveness, readiness and the error shape of unknown routes."""

from __future__ import annotations

from app.config import Settings
from app.jobs.reaper import beat_worker

from .helpers import make_client


def test_health_is_ok(client):
    assert client.get("/health").json() == {"status": "ok"}


def test_ready_checks_database_broker_artifacts_and_a_live_worker(client, db_session, settings):
    beat_worker(db_session, worker_id="ready:1:x", hostname="h", pid=1, queue=settings.train_queue, job_id=None)
    response = client.get("/ready")
    assert response.status_code == 200, response.text
    assert response.json()["checks"] == {"database": "ok", "broker": "ok", "artifacts": "ok", "worker": "ok"}


def test_ready_is_503_naming_an_unreachable_broker(settings: Settings):
    broken = settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0", "ready_requires_worker": False})
    with make_client(broken) as test_client:
        response = test_client.get("/ready")
    assert response.status_code == 503
    detail = response.json()["detail"]
    assert [item["loc"] for item in detail] == [["broker"]]
    assert detail[0]["type"] == "unavailable"


def test_unknown_route_uses_the_error_shape(client):
    response = client.get("/nowhere")
    assert response.status_code == 404
    assert response.json() == {"detail": [{"loc": [], "msg": "Not Found", "type": "not_found"}]}


def test_openapi_lists_the_routes(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/corpora", "/finetune", "/adapt", "/jobs/{job_id}", "/predict", "/models/{name}/aliases/{alias}"):
        assert path in paths
