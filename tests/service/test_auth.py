"""API keys over HTTP: the production default requires them, 401/403 in the one error shape, the scope map,
revocation and expiry, the verified-key cache, the admin routes of keys."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from app.auth.orm import ApiKey
from app.auth.service import KeyCache, Principal, create_key
from app.config import Settings
from app.db import utcnow

from .helpers import make_client


@pytest.fixture
def secure_settings(settings: Settings) -> Settings:
    """The session's settings with the production default: ``DALLMI_AUTH`` unset."""
    return settings.model_copy(update={"auth": None})


@pytest.fixture
def secure_client(secure_settings: Settings, db_session: Session) -> Iterator[TestClient]:
    """A client of an app that requires keys, on the rolled-back test session."""
    with make_client(secure_settings, db_session) as test_client:
        yield test_client


def new_key(session: Session, *scopes: str, **kwargs) -> str:
    """A fresh key with these scopes, in clear."""
    return create_key(session, name=f"test-{'-'.join(scopes)}", scopes=scopes, **kwargs)[1]


def bearer(key: str) -> dict[str, str]:
    """The Authorization header of ``key``."""
    return {"Authorization": f"Bearer {key}"}


def assert_error(response, status: int, kind: str) -> None:
    """The one error shape, with this status and type."""
    assert response.status_code == status, response.text
    (item,) = response.json()["detail"]
    assert set(item) == {"loc", "msg", "type"} and item["type"] == kind


def test_the_production_default_requires_a_key(settings):
    assert Settings(database_url=settings.database_url).auth_required
    assert not settings.model_copy(update={"auth": "disabled"}).auth_required


def test_no_key_is_401_with_www_authenticate(secure_client):
    for method, path in [("GET", "/corpora"), ("GET", "/jobs"), ("GET", "/models"), ("GET", "/keys"),
                         ("GET", "/predict?model=minilm-l6&text=x"), ("DELETE", "/corpora/1")]:  # fmt: skip
        response = secure_client.request(method, path)
        assert_error(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.json()["detail"][0]["loc"] == ["header", "Authorization"]


def test_health_and_ready_stay_open(secure_client):
    assert secure_client.get("/health").status_code == 200
    ready = secure_client.get("/ready")  # no worker runs here: 503 naming the worker, never 401
    assert ready.status_code == 200 or [item["loc"] for item in ready.json()["detail"]] == [["worker"]]


@pytest.mark.parametrize(
    "header",
    ["Bearer nonsense", "Bearer dallmi_0123456789ab_wrong", "Basic dXNlcjpwYXNz", "Bearer " + "x" * 5000, "Bearer"],
)
def test_a_bad_key_is_401(secure_client, header):
    response = secure_client.get("/corpora", headers={"Authorization": header})
    assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_right_prefix_with_a_wrong_secret_is_401(secure_client, db_session):
    key = new_key(db_session, "admin")
    response = secure_client.get("/corpora", headers=bearer(key[:-4] + "AAAA"))
    assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert secure_client.get("/corpora", headers=bearer(key)).status_code == 200


# (method, path, json body, scopes that may call it); admin may call everything.
ROUTES = [
    ("GET", "/predict?model=minilm-l6&text=a", None, {"predict"}),
    ("POST", "/predict", {"model": "absent", "texts": ["a"]}, {"predict"}),
    ("GET", "/corpora", None, {"train"}),
    ("DELETE", "/corpora/999999", None, {"train"}),
    ("POST", "/finetune", {"corpus_id": 999999, "base_model": "minilm-l6", "name": "x"}, {"train"}),
    ("POST", "/adapt", {"corpus_id": 999999, "base_model": "minilm-l6", "name": "x"}, {"train"}),
    ("GET", "/jobs", None, {"train"}),
    ("DELETE", "/jobs/999999", None, {"train"}),
    ("GET", "/models", None, {"predict", "train"}),
    ("GET", "/models/minilm-l6/versions/1", None, {"predict", "train"}),
    ("POST", "/models/base", {"name": "again", "source": "minilm-l6"}, set()),
    ("PUT", "/models/minilm-l6/aliases/production", {"version": 1}, set()),
    ("DELETE", "/models/absent/versions/1", None, set()),
    ("GET", "/keys", None, set()),
    ("POST", "/keys", {"name": "k", "scopes": ["predict"]}, set()),
]


@pytest.mark.parametrize("scope", ["predict", "train", "admin"])
def test_the_scope_map(secure_client, db_session, scope):
    key = new_key(db_session, scope)
    for method, path, body, allowed in ROUTES:
        response = secure_client.request(method, path, json=body, headers=bearer(key))
        if scope == "admin" or scope in allowed:
            assert response.status_code not in (401, 403), (scope, method, path, response.text)
        else:
            assert_error(response, 403, "forbidden")
            assert scope in response.json()["detail"][0]["msg"] or "lacks" in response.json()["detail"][0]["msg"]


def test_a_key_with_several_scopes(secure_client, db_session):
    key = new_key(db_session, "predict", "train")
    assert secure_client.get("/corpora", headers=bearer(key)).status_code == 200
    response = secure_client.get("/predict", params={"model": "absent", "text": "a"}, headers=bearer(key))
    assert response.status_code == 404
    assert_error(secure_client.get("/keys", headers=bearer(key)), 403, "forbidden")


def test_keys_are_stored_as_argon2_hashes(db_session):
    key = new_key(db_session, "predict")
    row = db_session.query(ApiKey).filter_by(prefix=key.split("_")[1]).one()
    assert row.secret_hash.startswith("$argon2id$") and key.split("_", 2)[2] not in row.secret_hash
    assert key not in str([getattr(row, c.key) for c in ApiKey.__table__.columns])


def test_revoking_through_the_api_takes_effect_at_once(secure_client, db_session):
    admin, user = new_key(db_session, "admin"), new_key(db_session, "train")
    assert secure_client.get("/corpora", headers=bearer(user)).status_code == 200  # now cached
    prefix = user.split("_")[1]
    response = secure_client.delete(f"/keys/{prefix}", headers=bearer(admin))
    assert response.status_code == 200 and response.json()["revoked_at"] is not None
    assert_error(secure_client.get("/corpora", headers=bearer(user)), 401, "unauthorized")
    assert_error(secure_client.delete("/keys/ffffffffffff", headers=bearer(admin)), 404, "not_found")


def test_a_revocation_elsewhere_is_seen_within_the_cache_ttl(secure_settings, db_session):
    key = new_key(db_session, "train")
    for ttl, still_served in [(3600.0, True), (0.0, False)]:
        with make_client(secure_settings.model_copy(update={"auth_cache_ttl_s": ttl}), db_session) as client:
            db_session.execute(update(ApiKey).values(revoked_at=None))
            assert client.get("/corpora", headers=bearer(key)).status_code == 200
            db_session.execute(update(ApiKey).values(revoked_at=utcnow()))  # as `dallmi keys revoke` would
            assert (client.get("/corpora", headers=bearer(key)).status_code == 200) is still_served


def test_an_expired_key_is_401(secure_client, db_session):
    key = new_key(db_session, "train", expires_at=utcnow() + timedelta(days=1))
    db_session.execute(update(ApiKey).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert_error(secure_client.get("/corpora", headers=bearer(key)), 401, "unauthorized")


def test_cached_keys_skip_the_database(secure_client, db_session):
    key = new_key(db_session, "train")
    assert secure_client.get("/corpora", headers=bearer(key)).status_code == 200
    row = db_session.query(ApiKey).one()
    first = row.last_used_at
    assert first is not None
    assert secure_client.get("/corpora", headers=bearer(key)).status_code == 200
    db_session.refresh(row)
    assert row.last_used_at == first  # verified from the cache, not again with argon2


def test_key_cache_entries_expire_and_are_bounded():
    now = [0.0]
    cache = KeyCache(ttl_s=30, max_size=2, timer=lambda: now[0])
    principal = Principal(prefix="0123456789ab", name="n", scopes=frozenset({"train"}))
    cache.put("k1", principal)
    assert cache.get("k1") == principal
    now[0] = 31.0
    assert cache.get("k1") is None
    for key in ("a", "b", "c"):
        cache.put(key, principal)
    assert sum(cache.get(key) is not None for key in ("a", "b", "c")) == 2
    cache.forget("0123456789ab")
    assert all(cache.get(key) is None for key in ("a", "b", "c"))


def test_keys_api_creates_lists_and_validates(secure_client, db_session):
    admin = new_key(db_session, "admin")
    response = secure_client.post("/keys", json={"name": "ci", "scopes": ["predict", "train"]}, headers=bearer(admin))
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["key"].startswith(f"dallmi_{created['prefix']}_") and created["scopes"] == ["predict", "train"]
    assert secure_client.get("/corpora", headers=bearer(created["key"])).status_code == 200
    listed = secure_client.get("/keys", headers=bearer(admin)).json()
    assert listed["count"] == 2 and all("key" not in k and "secret_hash" not in k for k in listed["data"])
    for body in ({"name": "x", "scopes": ["root"]}, {"name": "x", "scopes": []}, {"name": "", "scopes": ["train"]},
                 {"name": "x", "scopes": ["train"], "expires_at": "2000-01-01T00:00:00Z"}):  # fmt: skip
        assert secure_client.post("/keys", json=body, headers=bearer(admin)).status_code == 422, body


def test_the_openapi_documents_the_bearer_scheme(secure_client):
    schema = secure_client.get("/openapi.json").json()
    scheme = schema["components"]["securitySchemes"]["ApiKey"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer") and "dallmi keys create" in scheme["description"]
    assert schema["paths"]["/corpora"]["get"]["security"] == [{"ApiKey": []}]
    assert "security" not in schema["paths"]["/health"]["get"]
    assert {"401", "403"} <= set(schema["paths"]["/predict"]["post"]["responses"])
    assert {"401", "403"} <= set(schema["paths"]["/models/{name}/versions/{version}"]["delete"]["responses"])


def test_disabled_auth_needs_no_key(client):
    assert client.get("/corpora").status_code == 200
