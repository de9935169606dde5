"""Submission checks of /finetune and /adapt, idempotency, cancellation and retry rules (no worker)."""

from __future__ import annotations

import pytest

from .helpers import TINY_PARAMS, upload
from .test_corpora import WIDE
from .test_models import add_trained

PARTIAL = b"id,text,A,B,C\n1,first text,1,0,0\n2,second text,0,1,0\n3,third text,1,1,0\n"


@pytest.fixture
def corpus_id(client) -> int:
    return client.post("/corpora", files={"file": ("c.csv", WIDE)}).json()["id"]


def _adapt(client, **body):
    return client.post("/adapt", json={"name": "adapted", "params": TINY_PARAMS, **body})


def test_finetune_is_accepted_and_queued(client, corpus_id):
    response = client.post(
        "/finetune", json={"corpus_id": corpus_id, "base_model": "minilm-l6", "name": "src", "params": TINY_PARAMS}
    )
    assert response.status_code == 202, response.text
    job = client.get(f"/jobs/{response.json()['job_id']}").json()
    assert job["status"] == "queued" and job["kind"] == "finetune" and job["base_model"] == "minilm-l6:1"
    assert job["progress"]["epochs"] == 2 and job["result_version"] is None


def test_unknown_corpus_model_alias_are_404_and_bad_params_422(client, corpus_id):
    response = client.post("/finetune", json={"corpus_id": 999999, "base_model": "minilm-l6", "name": "s"})
    assert response.status_code == 404 and response.json()["detail"][0]["loc"] == ["body", "corpus_id"]
    response = client.post("/finetune", json={"corpus_id": corpus_id, "base_model": "absent", "name": "s"})
    assert response.status_code == 404 and response.json()["detail"][0]["loc"] == ["body", "base_model"]
    response = client.post(
        "/finetune", json={"corpus_id": corpus_id, "base_model": "minilm-l6", "name": "s", "params": {"bogus": 1}}
    )
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "params", "bogus"]
    response = client.post("/finetune", json={"corpus_id": corpus_id, "base_model": "minilm-l6:x", "name": "s"})
    assert response.status_code == 422 and response.json()["detail"][0]["type"] == "string_pattern_mismatch"
    response = client.post("/finetune", json={"corpus_id": corpus_id, "base_model": "minilm-l6@prod", "name": "s"})
    assert response.status_code == 404 and "no alias prod" in response.json()["detail"][0]["msg"]


def test_a_base_model_name_cannot_receive_trained_versions(client, corpus_id):
    response = client.post("/finetune", json={"corpus_id": corpus_id, "base_model": "minilm-l6", "name": "minilm-l6"})
    assert response.status_code == 409 and response.json()["detail"][0]["loc"] == ["body", "name"]


def test_adapt_needs_a_trained_base(client, corpus_id):
    response = _adapt(client, corpus_id=corpus_id, base_model="minilm-l6")
    assert response.status_code == 409 and "without labels" in response.json()["detail"][0]["msg"]


def test_label_mismatch_is_422_listing_every_difference(client, db_session, corpus_id):
    add_trained(db_session, "src", ["A", "C", "D"])
    response = _adapt(client, corpus_id=corpus_id, base_model="src")
    assert response.status_code == 422
    messages = sorted(item["msg"] for item in response.json()["detail"])
    assert messages == [
        "label 'B' of the corpus is not a label of src:1",
        "label 'C' of src:1 is missing from the corpus",
        "label 'D' of src:1 is missing from the corpus",
    ]
    assert {item["type"] for item in response.json()["detail"]} == {"label_mismatch"}


def test_a_declared_label_mapping_reconciles_names(client, db_session, corpus_id):
    add_trained(db_session, "src", ["B", "alpha"])
    assert _adapt(client, corpus_id=corpus_id, base_model="src").status_code == 422
    response = _adapt(client, corpus_id=corpus_id, base_model="src:1", label_map={"A": "alpha"})
    assert response.status_code == 202, response.text
    response = _adapt(client, corpus_id=corpus_id, base_model="src", label_map={"Q": "alpha"})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "label_map", "Q"]


def test_a_label_without_known_positive_is_adapted_around_and_none_at_all_is_422(client, db_session):
    corpus = client.post("/corpora", files={"file": ("p.csv", PARTIAL)}).json()  # C has no known positive
    add_trained(db_session, "src", ["A", "B", "C"])
    response = _adapt(client, corpus_id=corpus["id"], base_model="src")
    assert response.status_code == 202, response.text
    empty = client.post("/corpora", files={"file": ("e.csv", b"id,text,A,B,C\n1,one,0,0,0\n2,two,0,0,0\n")}).json()
    response = _adapt(client, corpus_id=empty["id"], base_model="src")
    assert response.status_code == 422
    (item,) = response.json()["detail"]
    assert item["type"] == "label_without_positive" and "no known positive of any label" in item["msg"]


def test_eval_corpus_with_other_labels_is_422(client, db_session, corpus_id):
    other = client.post("/corpora", files={"file": ("p.csv", PARTIAL)}).json()
    add_trained(db_session, "src", ["A", "B"])
    response = _adapt(client, corpus_id=corpus_id, base_model="src", eval_corpus_id=other["id"])
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "eval_corpus_id"]


def test_idempotency_key_returns_the_same_job(client, db_session, corpus_id):
    add_trained(db_session, "src", ["A", "B"])
    body = {"corpus_id": corpus_id, "base_model": "src", "method": "bce"}
    first = (
        _adapt(client, **body, headers=None)
        if False
        else client.post("/adapt", json={"name": "a", **body}, headers={"Idempotency-Key": "k-1"})
    )
    second = client.post("/adapt", json={"name": "a", **body}, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == second.status_code == 202
    assert first.json()["job_id"] == second.json()["job_id"]
    assert client.get("/jobs", params={"status": "queued"}).json()["count"] == 1
    other = client.post("/adapt", json={"name": "b", **body}, headers={"Idempotency-Key": "k-1"})
    assert other.status_code == 409 and other.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]


def test_cancel_and_retry_rules(client, corpus_id):
    job_id = client.post(
        "/finetune", json={"corpus_id": corpus_id, "base_model": "minilm-l6", "name": "s", "params": TINY_PARAMS}
    ).json()["job_id"]
    assert client.post(f"/jobs/{job_id}/retry").status_code == 409
    response = client.delete(f"/jobs/{job_id}")
    assert response.status_code == 202 and response.json()["status"] == "cancelled"
    assert client.delete(f"/jobs/{job_id}").status_code == 409
    assert client.delete("/jobs/999999").status_code == 404


def test_deleting_a_corpus_used_by_a_queued_job_is_409(client, source_csv):
    corpus = upload(client, source_csv)
    client.post("/finetune", json={"corpus_id": corpus["id"], "base_model": "minilm-l6", "name": "s"})
    response = client.delete(f"/corpora/{corpus['id']}")
    assert response.status_code == 409 and response.json()["detail"][0]["type"] == "corpus_in_use"
    assert client.get(f"/corpora/{corpus['id']}").status_code == 200
