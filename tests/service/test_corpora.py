"""Corpus upload, listing, deletion and every validation error of an upload."""

from __future__ import annotations

import json

from app.config import Settings

from .helpers import make_client, upload

WIDE = b"id,text,A,B\n1,first text,1,0\n2,second text,0,1\n3,third text,1,1\n"


def _post(client, content: bytes, filename: str = "c.csv", **data):
    return client.post("/corpora", files={"file": (filename, content)}, data=data)


def _stored_files(settings: Settings) -> set[str]:
    folder = settings.artifacts_dir / "corpora"
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def test_upload_wide_csv_reports_rows_labels_positives_and_hash(client):
    response = _post(client, WIDE, name="tiny")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "tiny" and body["rows"] == 3 and body["labels"] == ["A", "B"]
    assert body["known_positives"] == {"A": 2, "B": 2}
    assert len(body["content_hash"]) == 64
    assert client.get(f"/corpora/{body['id']}").json() == body
    assert body["id"] in [c["id"] for c in client.get("/corpora").json()["data"]]


def test_labels_column_csv_and_jsonl_give_the_same_corpus(client):
    labels_csv = b"id,text,labels\n1,first text,A\n2,second text,B\n3,third text,A|B\n"
    jsonl = b"\n".join(
        json.dumps({"id": i, "text": t, "labels": ls}).encode()
        for i, t, ls in [("1", "first text", ["A"]), ("2", "second text", ["B"]), ("3", "third text", ["A", "B"])]
    )
    hashes = {
        _post(client, WIDE).json()["content_hash"],
        _post(client, labels_csv).json()["content_hash"],
        _post(client, jsonl, filename="c.jsonl").json()["content_hash"],
    }
    assert len(hashes) == 1


def test_a_real_corpus_uploads(client, source_csv):
    body = upload(client, source_csv)
    assert body["rows"] == 40 and len(body["labels"]) == 14
    assert all(count > 0 for count in body["known_positives"].values())


def test_invalid_rows_are_422_naming_the_row_and_nothing_is_stored(client, settings):
    before = _stored_files(settings)
    count = client.get("/corpora").json()["count"]
    cases = {
        b"id,text,A\n1,ok,1\n2,,0\n": "empty",  # empty text
        b"id,text,A\n1,ok,1\n2,fine,7\n": "7",  # not 0/1
        b"id,text,A\n1,ok,1\n1,again,0\n": "1",  # duplicate id
        b"id,text,A\n1,ok,1\n2,fine\n": "fields",  # short row
    }
    for content, fragment in cases.items():
        response = _post(client, content)
        assert response.status_code == 422, response.text
        (item,) = response.json()["detail"]
        assert item["loc"] == ["body", "file", 2] and item["type"] == "corpus_error"
        assert item["msg"].startswith("row 2") and fragment in item["msg"]
    assert _stored_files(settings) == before
    assert client.get("/corpora").json()["count"] == count


def test_malformed_files_are_422(client):
    response = _post(client, b'id,text,A\n1,ok,1\n2,"unterminated,1\n')
    assert response.status_code == 422 and "malformed CSV" in response.json()["detail"][0]["msg"]
    response = _post(client, b"id,A\n1,1\n")
    assert response.status_code == 422 and "'text' column" in response.json()["detail"][0]["msg"]


def test_malformed_json_and_empty_file_are_422(client):
    response = _post(client, b'{"id": "1", "text": "x", "labels": ["A"]}\n{not json\n', filename="c.jsonl")
    assert response.status_code == 422 and response.json()["detail"][0]["loc"][:2] == ["body", "file"]
    response = _post(client, b"")
    assert response.status_code == 422 and "empty" in response.json()["detail"][0]["msg"]


def test_unknown_format_is_422(client):
    response = _post(client, WIDE, format="xml")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "format"]


def test_oversized_upload_is_413_and_nothing_is_stored(settings, db_session):
    small = settings.model_copy(update={"max_upload_bytes": 20})
    before = _stored_files(settings)
    with make_client(small, db_session) as test_client:
        response = _post(test_client, WIDE)
    assert response.status_code == 413
    assert response.json()["detail"][0]["type"] == "payload_too_large"
    assert _stored_files(settings) == before


def test_delete_removes_row_and_file(client, settings):
    body = _post(client, WIDE).json()
    before = _stored_files(settings)
    assert client.delete(f"/corpora/{body['id']}").status_code == 204
    assert client.get(f"/corpora/{body['id']}").status_code == 404
    assert len(_stored_files(settings)) == len(before) - 1


def test_missing_corpus_is_404_in_the_error_shape(client):
    response = client.get("/corpora/999999")
    assert response.status_code == 404
    assert response.json()["detail"] == [
        {"loc": ["path", "corpus_id"], "msg": "corpus 999999 does not exist", "type": "not_found"}
    ]
