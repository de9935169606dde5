"""Body limits of every route, enforced while the body streams in (issue #9, finding 7).

The streaming tests drive the whole application as an ASGI callable with a ``receive`` that hands out the
body chunk by chunk and counts what the application pulled: a refused body must not be read to its end.
"""

from __future__ import annotations

import json

import anyio
import pytest

from app.config import Settings

from .helpers import make_client, upload

CHUNK = 64 * 1024


def _multipart_chunks(total_bytes: int, boundary: str = "dallmi-test-boundary"):
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
        "Content-Type: text/csv\r\n\r\nid,text,a\r\n"
    ).encode()
    yield head
    row = b"1,a clinical trial of something,1\r\n"
    for _ in range(total_bytes // CHUNK):
        yield row * (CHUNK // len(row))
    yield f"\r\n--{boundary}--\r\n".encode()


def _call(app, *, method: str, path: str, headers: list[tuple[bytes, bytes]], chunks) -> tuple[int, dict, int]:
    """(status, JSON body, chunks the app pulled) of one request sent to the ASGI app chunk by chunk."""
    pulled = 0
    sent: list[dict] = []
    iterator = iter(chunks)

    async def receive() -> dict:
        nonlocal pulled
        chunk = next(iterator, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        pulled += 1
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
        "client": ("127.0.0.1", 1234), "server": ("testserver", 80), "state": {},
    }  # fmt: skip
    anyio.run(app, scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body), pulled


@pytest.fixture
def small_limits(settings: Settings) -> Settings:
    """Uploads up to 256 KiB, other bodies up to 4 KiB."""
    return settings.model_copy(update={"max_upload_bytes": 256 * 1024, "max_json_bytes": 4096})


def _assert_413(body: dict) -> None:
    (item,) = body["detail"]
    assert item["type"] == "payload_too_large" and "larger than the limit" in item["msg"]


def test_a_chunked_upload_over_the_limit_is_refused_before_it_is_read_whole(small_limits, db_session):
    with make_client(small_limits, db_session) as client:
        headers = [(b"content-type", b"multipart/form-data; boundary=dallmi-test-boundary")]
        status, body, pulled = _call(
            client.app, method="POST", path="/corpora", headers=headers, chunks=_multipart_chunks(8 * 1024 * 1024)
        )
    assert status == 413
    _assert_413(body)
    # 256 KiB + 64 KiB of envelope is 5 chunks of 64 KiB; of 128 chunks (8 MiB) at most one more is read
    assert pulled <= 7


def test_a_declared_length_over_the_limit_is_refused_without_reading(small_limits, db_session):
    with make_client(small_limits, db_session) as client:
        headers = [
            (b"content-type", b"multipart/form-data; boundary=dallmi-test-boundary"),
            (b"content-length", str(524 * 1024 * 1024).encode()),
        ]
        status, body, pulled = _call(
            client.app, method="POST", path="/corpora", headers=headers, chunks=_multipart_chunks(8 * 1024 * 1024)
        )
    assert (status, pulled) == (413, 0)
    _assert_413(body)


def test_a_chunked_json_body_over_the_limit_is_refused_while_it_streams(small_limits, db_session):
    chunks = [b'{"model": "x", "texts": ["', *([b"a" * 1024] * 64), b'"]}']
    with make_client(small_limits, db_session) as client:
        headers = [(b"content-type", b"application/json")]
        status, body, pulled = _call(client.app, method="POST", path="/predict", headers=headers, chunks=chunks)
    assert status == 413 and pulled <= 6
    _assert_413(body)


@pytest.mark.parametrize("path", ["/predict", "/finetune", "/adapt", "/models/base"])
def test_json_bodies_over_the_limit_get_413_on_every_route(small_limits, db_session, path):
    with make_client(small_limits, db_session) as client:
        response = client.post(path, json={"model": "x", "texts": ["a" * 5000]})
    assert response.status_code == 413
    _assert_413(response.json())
    assert response.headers["connection"] == "close"


def test_the_default_json_limit_refuses_a_25_mb_prediction(settings, db_session):
    with make_client(settings, db_session) as client:
        response = client.post("/predict", json={"model": "x", "texts": ["word " * 100_000] * 50})
    assert response.status_code == 413
    _assert_413(response.json())


def test_bodies_under_the_limits_pass(small_limits, db_session, source_csv):
    with make_client(small_limits, db_session) as client:
        assert upload(client, source_csv, "limits-ok")["rows"] == 40
        response = client.post("/predict", json={"model": "absent-model", "texts": ["a short text"]})
    assert response.status_code == 404
