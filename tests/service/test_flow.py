"""End to end with a real Celery worker: upload -> finetune -> adapt -> predict, then the registry."""

from __future__ import annotations

import threading

import pytest

from .helpers import TINY_PARAMS, upload, wait_job

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(live_client, worker, tiny_model_dir, source_csv, target_csv) -> dict:
    """Fine-tune the tiny model on the source slice, then adapt it with DALLMi on the target slice."""
    client = live_client
    assert client.post("/models/base", json={"name": "tiny", "source": str(tiny_model_dir)}).status_code == 201
    source, target = upload(client, source_csv, "source"), upload(client, target_csv, "target")
    response = client.post(
        "/finetune", json={"corpus_id": source["id"], "base_model": "tiny", "name": "pubmed-src", "params": TINY_PARAMS}
    )
    assert response.status_code == 202, response.text
    finetuned = wait_job(client, response.json()["job_id"], ("succeeded", "failed"))
    assert finetuned["status"] == "succeeded", finetuned["error"]
    response = client.post(
        "/adapt",
        json={"corpus_id": target["id"], "eval_corpus_id": target["id"], "base_model": "pubmed-src@",
              "name": "pubmed-tgt", "method": "dallmi", "params": TINY_PARAMS},
    )  # fmt: skip
    assert response.status_code == 422  # "NAME@" is not a reference
    response = client.post(
        "/adapt",
        json={"corpus_id": target["id"], "eval_corpus_id": target["id"], "base_model": finetuned["result_version"],
              "name": "pubmed-tgt", "method": "dallmi", "params": TINY_PARAMS},
    )  # fmt: skip
    assert response.status_code == 202, response.text
    adapted = wait_job(client, response.json()["job_id"], ("succeeded", "failed"))
    assert adapted["status"] == "succeeded", adapted["error"]
    return {"source": source, "target": target, "finetuned": finetuned, "adapted": adapted}


def test_jobs_record_progress_metrics_and_result(trained):
    job = trained["adapted"]
    assert job["result_version"] == "pubmed-tgt:1" and job["attempts"] == 1
    assert job["progress"]["epoch"] == job["progress"]["epochs"] == 2
    assert job["progress"]["step"] == job["progress"]["total_steps"] > 0
    assert [m["epoch"] for m in job["metrics"]] == [1, 2]
    assert all("train_loss" in m and "mAP" in m for m in job["metrics"])


def test_versions_carry_lineage_hashes_thresholds_and_checksums(live_client, trained, settings):
    version = live_client.get("/models/pubmed-tgt/versions/1").json()
    assert version["parent"] == "pubmed-src:1" and version["job_id"] == trained["adapted"]["id"]
    assert version["corpus_hash"] == version["eval_corpus_hash"] == trained["target"]["content_hash"]
    assert version["labels"] == trained["target"]["labels"] and len(version["thresholds"]) == 14
    assert version["method"] == "dallmi" and "mAP" in version["metrics"]
    assert version["checksums"] and all(len(h) == 64 for h in version["checksums"].values())
    assert (settings.artifacts_dir / "models/pubmed-tgt/1/dallmi.json").is_file()
    assert not (settings.artifacts_dir / "jobs" / str(trained["adapted"]["id"])).exists()
    source = live_client.get("/models/pubmed-src/versions/1").json()
    assert source["parent"] == "tiny:1" and source["corpus_hash"] == trained["source"]["content_hash"]


def test_predict_get_and_post(live_client, trained):
    response = live_client.get(
        "/predict", params={"model": "pubmed-tgt:1", "text": "A study of the heart.", "top_k": 3}
    )
    assert response.status_code == 200, response.text
    (result,) = response.json()["results"]
    scores = [s["score"] for s in result["scores"]]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)
    response = live_client.post(
        "/predict", json={"model": "pubmed-tgt", "texts": ["one text", "another text"], "threshold": 0.0}
    )
    body = response.json()
    assert body["model"] == "pubmed-tgt:1" and len(body["results"]) == 2
    assert all(len(r["scores"]) == 14 and len(r["predicted"]) == 14 for r in body["results"])
    response = live_client.post("/predict", json={"model": "pubmed-tgt", "texts": ["x"], "threshold": 1.0})
    assert response.json()["results"][0]["predicted"] == []


def test_predict_by_alias(live_client, trained):
    assert live_client.put("/models/pubmed-tgt/aliases/production", json={"version": 1}).status_code == 200
    response = live_client.get("/predict", params={"model": "pubmed-tgt@production", "text": "x"})
    assert response.json()["model"] == "pubmed-tgt:1"


def test_predict_validation(live_client, trained):
    response = live_client.get("/predict", params={"model": "pubmed-tgt", "text": "   "})
    assert response.status_code == 422 and response.json()["detail"][0]["type"] == "empty_text"
    response = live_client.post("/predict", json={"model": "pubmed-tgt", "texts": ["ok", ""]})
    assert response.json()["detail"][0]["loc"] == ["body", "texts", 1]
    response = live_client.post("/predict", json={"model": "pubmed-tgt", "texts": []})
    assert response.status_code == 422
    response = live_client.get("/predict", params={"model": "tiny", "text": "x"})
    assert response.status_code == 409 and "without a classification head" in response.json()["detail"][0]["msg"]
    assert live_client.get("/predict", params={"model": "absent", "text": "x"}).status_code == 404
    assert live_client.get("/predict", params={"model": "pubmed-tgt:7", "text": "x"}).status_code == 404


def test_model_is_loaded_once_and_concurrent_requests_share_forward_passes(live_client, trained):
    cache = live_client.app.state.model_cache
    live_client.get("/predict", params={"model": "pubmed-src:1", "text": "warm up"})
    version_id = live_client.get("/models/pubmed-src/versions/1").json()["id"]
    loads, loaded = cache.loads, cache._models[version_id]
    passes, loaded.batcher.wait_s = loaded.batcher.forward_passes, 0.5  # a wide window: robust under load
    responses: list = []

    def call(i: int) -> None:
        responses.append(live_client.get("/predict", params={"model": "pubmed-src:1", "text": f"text {i}"}))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r.status_code == 200 for r in responses)
    assert cache.loads == loads
    assert 1 <= loaded.batcher.forward_passes - passes < 8


def test_a_tampered_checkpoint_is_refused(live_client, trained, settings):
    weights = next((settings.artifacts_dir / "models/pubmed-src/1").glob("*.safetensors"))
    original = weights.read_bytes()
    live_client.app.state.model_cache.close()
    try:
        weights.write_bytes(original[:-8] + b"tampered")
        response = live_client.get("/predict", params={"model": "pubmed-src:1", "text": "x"})
        assert response.status_code == 503 and response.json()["detail"][0]["type"] == "checkpoint_integrity"
    finally:
        weights.write_bytes(original)
