"""Issue 9, findings 4 and 5: no 5xx for any input, every status code documented, and what would fail in
the worker refused at the door. PostgreSQL through ``client``; SQLite through ``sqlite_client``."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.migrate import prestart

from .helpers import TINY_PARAMS, make_client
from .test_corpora import WIDE

HUGE = 99999999999999999999  # past 2^63 (SQLite) and 2^31 (PostgreSQL)


@pytest.fixture(scope="module")
def sqlite_client(tmp_path_factory) -> Iterator[TestClient]:
    """The embedded mode's database: SQLite, migrated, with the built-in base model."""
    home = tmp_path_factory.mktemp("sqlite-home")
    settings = Settings(
        database_url=f"sqlite:///{home / 'dallmi.db'}", broker_url="filesystem://", artifacts_dir=home / "artifacts",
        auth="disabled",
    )
    prestart(settings)
    with make_client(settings) as client:
        yield client


@pytest.fixture(params=["postgresql", "sqlite"])
def any_client(request) -> TestClient:
    """Each database mode in turn."""
    return request.getfixturevalue("client" if request.param == "postgresql" else "sqlite_client")


def _upload(client: TestClient, content: bytes, filename: str = "c.csv"):
    return client.post("/corpora", files={"file": (filename, content)})


def _finetune(client: TestClient, corpus_id: int, **body):
    return client.post(
        "/finetune", json={"corpus_id": corpus_id, "base_model": "minilm-l6", "name": "out", **body}
    )


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"/corpora/{HUGE}", None),
        ("DELETE", f"/corpora/{2**31}", None),
        ("GET", f"/corpora?offset={2**63}", None),
        ("GET", f"/jobs/{HUGE}", None),
        ("GET", f"/jobs?offset={2**63}", None),
        ("DELETE", f"/jobs/{2**31}", None),
        ("POST", f"/jobs/{HUGE}/retry", None),
        ("GET", f"/models/minilm-l6/versions/{HUGE}", None),
        ("PUT", "/models/minilm-l6/aliases/prod", {"version": HUGE}),
        ("POST", "/finetune", {"corpus_id": HUGE, "base_model": "minilm-l6", "name": "x"}),
        ("POST", "/finetune", {"corpus_id": 1, "base_model": f"minilm-l6:{HUGE}", "name": "x"}),
        ("GET", f"/predict?model=minilm-l6:{HUGE}&text=hello", None),
        ("POST", "/predict", {"model": f"x:{2**31}", "texts": ["hello"]}),
    ],
)
def test_integers_past_the_database_columns_are_4xx(any_client, method, path, body):
    response = any_client.request(method, path, json=body)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["detail"][0]["loc"]


def test_a_csv_with_cr_line_endings_uploads(any_client):
    response = _upload(any_client, WIDE.replace(b"\n", b"\r"))
    assert response.status_code == 201, response.text
    assert response.json()["rows"] == 3 and response.json()["labels"] == ["A", "B"]


@pytest.mark.parametrize("source", ["~nosuchuser", "~nosuchuser/model", "/" + "a" * 300, "a/" * 150, "x\x00y"])
def test_base_model_sources_the_file_system_refuses_are_4xx_without_paths(any_client, source, tmp_path):
    response = any_client.post("/models/base", json={"name": "new-base", "source": source})
    assert response.status_code in (404, 422), response.text
    assert "/" not in response.json()["detail"][0]["msg"] and str(tmp_path) not in response.text


def test_missing_and_existing_folders_get_the_same_answer(client, tmp_path):
    (tmp_path / "exists").mkdir()
    answers = [
        client.post("/models/base", json={"name": "new-base", "source": str(tmp_path / name)})
        for name in ("exists", "absent")
    ]
    assert [r.status_code for r in answers] == [422, 422]
    assert answers[0].json() == answers[1].json()


def test_timestamps_carry_their_timezone_in_both_modes(any_client):
    created = any_client.get("/models/minilm-l6").json()["created_at"]
    assert re.search(r"(Z|[+-]\d\d:\d\d)$", created), created
    corpus = _upload(any_client, WIDE).json()
    assert re.search(r"(Z|[+-]\d\d:\d\d)$", corpus["created_at"])


def test_openapi_documents_every_error_status_with_the_one_error_body(client):
    paths = client.get("/openapi.json").json()["paths"]
    expected = {
        ("/corpora", "post"): {"400", "413", "422"},
        ("/corpora/{corpus_id}", "get"): {"404", "422"},
        ("/corpora/{corpus_id}", "delete"): {"404", "409", "422"},
        ("/finetune", "post"): {"404", "409", "422", "503"},
        ("/jobs/{job_id}/retry", "post"): {"404", "409", "503"},
        ("/models/base", "post"): {"404", "409", "422"},
        ("/models/{name}/aliases/{alias}", "put"): {"404", "409", "422"},
        ("/predict", "post"): {"404", "409", "422", "503"},
        ("/ready", "get"): {"503"},
    }
    for (path, method), codes in expected.items():
        responses = paths[path][method]["responses"]
        assert codes <= set(responses), (path, method, sorted(responses))
        for code in codes:
            ref = responses[code]["content"]["application/json"]["schema"]["$ref"]
            assert ref == "#/components/schemas/ErrorBody", (path, method, code)


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/corpora/1", "DELETE, GET"), ("/corpora", "GET, POST"), ("/predict", "GET, POST"), ("/health", "GET"),
        ("/models/base", "POST"),  # a concrete path before /models/{name}, as OpenAPI matches them
    ],
)
def test_an_unsupported_method_is_405_with_every_allowed_method(client, path, allowed):
    response = client.request("TRACE", path)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert response.json()["detail"][0]["type"] == "method_not_allowed"


def test_an_unexpected_error_is_500_with_connection_close(settings):
    test_client = make_client(settings)

    def boom() -> None:
        raise RuntimeError("boom")

    test_client.app.add_api_route("/boom", boom)
    with TestClient(test_client.app, raise_server_exceptions=False) as raw:
        response = raw.get("/boom")
    assert response.status_code == 500 and response.headers["connection"] == "close"
    assert response.json()["detail"][0]["type"] == "internal_error"


def test_schema_valid_references_to_missing_or_wrong_kind_resources_are_404_or_409(client):
    corpus_id = _upload(client, WIDE).json()["id"]
    response = _finetune(client, corpus_id + 1000)
    assert response.status_code == 404 and response.json()["detail"][0]["loc"] == ["body", "corpus_id"]
    response = client.post("/finetune", json={"corpus_id": corpus_id, "base_model": "absent", "name": "x"})
    assert response.status_code == 404 and response.json()["detail"][0]["loc"] == ["body", "base_model"]
    response = client.post("/finetune", json={"corpus_id": corpus_id, "base_model": "minilm-l6", "name": "minilm-l6"})
    assert response.status_code == 409 and response.json()["detail"][0]["loc"] == ["body", "name"]
    response = client.post("/adapt", json={"corpus_id": corpus_id, "base_model": "minilm-l6", "name": "x"})
    assert response.status_code == 409 and "without labels" in response.json()["detail"][0]["msg"]
    response = client.get("/predict", params={"model": "minilm-l6", "text": "a text"})
    assert response.status_code == 409 and response.json()["detail"][0]["type"] == "not_a_classifier"


def test_blank_texts_and_malformed_references_are_rejected_by_the_schema(client):
    schema = client.get("/openapi.json").json()
    predict = schema["components"]["schemas"]["PredictCreate"]["properties"]
    assert predict["texts"]["items"]["pattern"] == r"\S" and "pattern" in predict["model"]
    response = client.post("/predict", json={"model": "m", "texts": ["ok", " \t"]})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "texts", 1]
    assert response.json()["detail"][0]["type"] == "empty_text"
    response = client.get("/predict", params={"model": "m" * 300, "text": "x"})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "model"]


# --- finding 5: accepted now, failing later ---


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"seed": -1}, "seed"),
        ({"seed": 1e20}, "seed"),
        ({"seed": 10**20}, "seed"),
        ({"epochs": 2147483648}, "epochs"),
        ({"epochs": 0}, "epochs"),
        ({"device": "tpu"}, "device"),
        ({"bogus": 1}, "bogus"),
        ({"extra": {"a": 1}}, "extra"),
        ({"batch_size": True}, "batch_size"),
    ],
)
def test_out_of_range_training_params_are_422(any_client, params, field):
    corpus_id = _upload(any_client, WIDE).json()["id"]
    response = _finetune(any_client, corpus_id, params=params)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][:3] == ["body", "params", field]


def test_integral_floats_are_integers(client):
    corpus_id = _upload(client, WIDE).json()["id"]
    response = _finetune(client, corpus_id, params={**TINY_PARAMS, "epochs": 2.0})
    assert response.status_code == 202, response.text
    assert client.get(f"/jobs/{response.json()['job_id']}").json()["params"]["epochs"] == 2


def test_a_job_over_the_configured_step_and_epoch_limits_is_422(settings, db_session):
    small = settings.model_copy(update={"max_job_steps": 50, "max_job_epochs": 20})
    with make_client(small, db_session) as test_client:
        corpus_id = _upload(test_client, WIDE).json()["id"]
        response = _finetune(test_client, corpus_id, params={"epochs": 60, "batch_size": 1, "min_steps": 0})
        assert response.status_code == 422 and "limit is 20" in response.json()["detail"][0]["msg"]
        response = _finetune(test_client, corpus_id, params={"epochs": 20, "batch_size": 1, "min_steps": 0})
        assert response.status_code == 422 and "60 optimiser steps" in response.json()["detail"][0]["msg"]
        response = _finetune(test_client, corpus_id, params={"epochs": 2, "batch_size": 1, "min_steps": 0})
        assert response.status_code == 202, response.text


def _jsonl(*records: dict) -> bytes:
    return b"\n".join(json.dumps(r).encode() for r in records)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (_jsonl({"text": "a", "labels": ["text"]}, {"text": "b", "labels": ["B"]}), "reserved"),
        (_jsonl({"text": "a", "labels": ["id"]}), "reserved"),
        (_jsonl({"text": "a", "labels": [""]}), "empty label name"),
        (_jsonl({"text": "a", "labels": [" x"]}), "whitespace"),
        (_jsonl({"id": "a", "text": "a", "labels": ["A"]}, {"id": " a", "text": "b", "labels": ["A"]}), "duplicate id"),
        (_jsonl({"id": True, "text": "a", "labels": ["A"]}), "'id' must be"),
        (_jsonl({"text": "x" * 131_073, "labels": ["A"]}), "the limit is 100000"),
        (_jsonl({"text": "a\u0000b", "labels": ["A"]}), "NUL"),
        (_jsonl({"text": "a", "labels": ["A\nB"]}), "control character"),
    ],
)
def test_corpora_every_job_would_fail_on_are_422_at_upload(any_client, content, problem):
    response = _upload(any_client, content, filename="c.jsonl")
    assert response.status_code == 422, response.text
    assert problem in response.json()["detail"][0]["msg"]
    assert response.json()["detail"][0]["type"] == "corpus_error"


def test_corpora_over_the_row_and_label_limits_are_422(settings, db_session):
    small = settings.model_copy(update={"max_corpus_rows": 2, "max_corpus_labels": 1})
    with make_client(small, db_session) as test_client:
        response = _upload(test_client, WIDE)
        assert response.status_code == 422 and "3 rows; the limit is 2" in response.json()["detail"][0]["msg"]
        response = _upload(test_client, b"text,A,B\nfirst,1,0\n")
        assert response.status_code == 422 and "2 labels; the limit is 1" in response.json()["detail"][0]["msg"]


def test_uploaded_file_names_are_stored_cleaned(client):
    response = client.post("/corpora", files={"file": ("../../x/" + "n" * 400 + ".csv", WIDE)})
    assert response.status_code == 201, response.text
    assert response.json()["filename"] == ("n" * 400 + ".csv")[-300:] and response.json()["name"] == "n" * 200
