"""schemathesis over the whole OpenAPI against the ASGI app, in both database modes.

Every check schemathesis has (the CLI's ``--checks all``) runs on every operation in the examples,
coverage and fuzzing phases: no server error, no response outside its schema, no status code the
OpenAPI does not document, no schema-valid request rejected, no invalid one accepted. Bounded by
``DALLMI_SCHEMATHESIS_MAX_EXAMPLES`` (fuzzing examples per operation). Authentication is required, as in
production: each database gets an admin key, sent with every generated request (schemathesis's own
checks send some without it and expect 401).
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator

import pytest
import schemathesis
from alembic import command
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app.auth.orm import ApiKey
from app.auth.service import KEY_TAG
from app.config import Settings, get_settings
from app.db import make_sessionmaker
from app.main import create_app
from app.migrate import alembic_config, prestart

from .helpers import REDIS, pg_database

SEED_CORPUS = b"id,text,A,B\n1,first text,1,0\n2,second text,0,1\n3,third text,1,1\n"
MAX_EXAMPLES = int(os.environ.get("DALLMI_SCHEMATHESIS_MAX_EXAMPLES", "25"))


def schemathesis_config() -> schemathesis.Config:
    """All checks, every phase but the stateful one (the API declares no links), a fixed seed."""
    return schemathesis.Config.from_dict({
        "seed": 0,
        "auth": {"openapi": {"ApiKey": {"bearer": KEY}}},
        "generation": {"max-examples": MAX_EXAMPLES, "mode": "all"},
        "phases": {"stateful": {"enabled": False}},
        "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
    })


APPS = {"sqlite": create_app(), "postgresql": create_app()}
KEY_PREFIX, KEY_SECRET = secrets.token_hex(6), secrets.token_urlsafe(32)
KEY = f"{KEY_TAG}_{KEY_PREFIX}_{KEY_SECRET}"
"""An admin key, stored in each database by the fixture; schemathesis sends it through the OpenAPI's
``ApiKey`` security scheme (and leaves it out where it tests that a route needs it)."""


def _schema(app) -> schemathesis.BaseSchema:
    """The app's OpenAPI, sent to the app itself through schemathesis's ASGI transport."""
    loaded = schemathesis.openapi.from_dict(app.openapi(), config=schemathesis_config())
    loaded.app = app  # what ``schemathesis.openapi.from_asgi`` does, without starting the lifespan at import
    return loaded


sqlite_schema, postgresql_schema = _schema(APPS["sqlite"]), _schema(APPS["postgresql"])


@pytest.fixture(scope="module", autouse=True)
def databases(tmp_path_factory) -> Iterator[None]:
    """A fresh SQLite database and a fresh PostgreSQL database, one per app; no worker runs."""
    tmp = tmp_path_factory.mktemp("schemathesis")
    sqlite = Settings(
        database_url=f"sqlite:///{tmp / 'home' / 'dallmi.db'}", broker_url="filesystem://",
        artifacts_dir=tmp / "home" / "artifacts", auth="required",
    )
    prestart(sqlite)
    for url in pg_database():
        command.upgrade(alembic_config(url), "head")
        postgresql = Settings(
            database_url=url, broker_url=REDIS, artifacts_dir=tmp / "pg-artifacts",
            train_queue=f"train-test-{uuid.uuid4().hex[:8]}", auth="required",
        )
        for name, settings in (("sqlite", sqlite), ("postgresql", postgresql)):
            APPS[name].dependency_overrides[get_settings] = lambda settings=settings: settings
            with make_sessionmaker(settings.database_url).begin() as session:
                session.add(ApiKey(prefix=KEY_PREFIX, name="schemathesis", scopes=["admin"],
                                   secret_hash=PasswordHasher().hash(KEY_SECRET)))
            _seed(APPS[name])
        yield


def _seed(app) -> None:
    """One corpus (id 1), so that the routes that show one are exercised too."""
    with TestClient(app) as client:
        response = client.post("/corpora", files={"file": ("c.csv", SEED_CORPUS)}, data={"name": "seed"},
                               headers={"Authorization": f"Bearer {KEY}"})
        assert response.status_code == 201 and response.json()["id"] == 1, response.text


CONTENT_CHECKED = {
    "POST /corpora": {"corpus_error"},
    "POST /models/base": {"source_not_allowed"},
    "POST /keys": {"value_error"},
}
"""Operations whose schema cannot say everything the server checks ("a valid corpus", "a folder under the
model roots", "an expiry in the future"): a schema-valid request may get a 422, but only one of these
types (schemathesis's own acceptance check holds for every other operation)."""


def rejections_name_the_content(ctx, response, case) -> None:
    """A schema-valid request rejected only for a reason of :data:`CONTENT_CHECKED`."""
    if case.meta.generation.mode.is_positive and response.status_code == 422:
        types = {item["type"] for item in response.json()["detail"]}
        assert types <= CONTENT_CHECKED[case.operation.label], response.text


def check(case: schemathesis.Case) -> None:
    """Send the case and run every check on the answer."""
    if case.operation.label in CONTENT_CHECKED:
        case.call_and_validate(
            excluded_checks=[positive_data_acceptance], additional_checks=[rejections_name_the_content]
        )
    elif case.operation.label == "GET /ready":  # no worker runs here: its documented 503 is the right answer
        case.call_and_validate(excluded_checks=[not_a_server_error])
    else:
        case.call_and_validate()


@sqlite_schema.parametrize()
def test_sqlite_mode_conforms_to_the_openapi(case):
    check(case)


@postgresql_schema.parametrize()
def test_postgresql_mode_conforms_to_the_openapi(case):
    check(case)
