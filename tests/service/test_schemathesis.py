"""schemathesis over the whole OpenAPI against the ASGI app, in both database modes.

Every check schemathesis has (the CLI's ``--checks all``) runs on every operation in the examples,
coverage and fuzzing phases: no server error, no response outside its schema, no status code the
OpenAPI does not document, no schema-valid request rejected, no invalid one accepted. Bounded by
``DALLMI_SCHEMATHESIS_MAX_EXAMPLES`` (fuzzing examples per operation). Once API keys are required,
``DALLMI_SCHEMATHESIS_AUTH`` (a whole ``Authorization`` header value) is sent with every request.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import schemathesis
from alembic import command
from fastapi.testclient import TestClient
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app.config import Settings, get_settings
from app.main import create_app
from app.migrate import alembic_config, prestart

from .helpers import REDIS, pg_database

SEED_CORPUS = b"id,text,A,B\n1,first text,1,0\n2,second text,0,1\n3,third text,1,1\n"
MAX_EXAMPLES = int(os.environ.get("DALLMI_SCHEMATHESIS_MAX_EXAMPLES", "25"))


def schemathesis_config() -> schemathesis.Config:
    """All checks, every phase but the stateful one (the API declares no links), a fixed seed."""
    headers = {"Authorization": auth} if (auth := os.environ.get("DALLMI_SCHEMATHESIS_AUTH")) else {}
    return schemathesis.Config.from_dict({
        "seed": 0,
        "headers": headers,
        "generation": {"max-examples": MAX_EXAMPLES, "mode": "all"},
        "phases": {"stateful": {"enabled": False}},
        "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
    })


APPS = {"sqlite": create_app(), "postgresql": create_app()}


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
        artifacts_dir=tmp / "home" / "artifacts",
    )
    prestart(sqlite)
    for url in pg_database():
        command.upgrade(alembic_config(url), "head")
        postgresql = Settings(
            database_url=url, broker_url=REDIS, artifacts_dir=tmp / "pg-artifacts",
            train_queue=f"train-test-{uuid.uuid4().hex[:8]}",
        )
        for name, settings in (("sqlite", sqlite), ("postgresql", postgresql)):
            APPS[name].dependency_overrides[get_settings] = lambda settings=settings: settings
            _seed(APPS[name])
        yield


def _seed(app) -> None:
    """One corpus (id 1), so that the routes that show one are exercised too."""
    with TestClient(app) as client:
        response = client.post("/corpora", files={"file": ("c.csv", SEED_CORPUS)}, data={"name": "seed"})
        assert response.status_code == 201 and response.json()["id"] == 1, response.text


def upload_rejections_name_the_corpus(ctx, response, case) -> None:
    """A schema says "a file", not "a valid corpus": a schema-valid upload may get a 422, but only one that
    names a problem of the corpus (schemathesis's own acceptance check holds for every other operation)."""
    if case.meta.generation.mode.is_positive and response.status_code == 422:
        types = {item["type"] for item in response.json()["detail"]}
        assert types == {"corpus_error"}, response.text


def check(case: schemathesis.Case) -> None:
    """Send the case and run every check on the answer."""
    if case.operation.label == "POST /corpora":
        case.call_and_validate(
            excluded_checks=[positive_data_acceptance], additional_checks=[upload_rejections_name_the_corpus]
        )
    else:
        case.call_and_validate()


@sqlite_schema.parametrize()
def test_sqlite_mode_conforms_to_the_openapi(case):
    check(case)


@postgresql_schema.parametrize()
def test_postgresql_mode_conforms_to_the_openapi(case):
    check(case)
