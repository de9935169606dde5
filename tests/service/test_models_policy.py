"""Where base models may come from: folders under DALLMI_MODEL_ROOTS, hub names only when allowed, no model
code, and refusals that do not tell which server paths exist."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.config import Settings
from app.models.policy import hub_allowed

from .helpers import REPO, make_client


@pytest.fixture
def roots(tmp_path: Path, tiny_model_dir: Path) -> dict[str, Path]:
    """A model root holding a copy of the tiny model, and a folder outside it holding another copy."""
    inside, outside = tmp_path / "root", tmp_path / "outside"
    shutil.copytree(tiny_model_dir, inside / "tiny")
    shutil.copytree(tiny_model_dir, outside / "tiny")
    return {"root": inside, "inside": inside / "tiny", "outside": outside / "tiny"}


def policy_client(settings: Settings, session: Session, **update) -> TestClient:
    """A client whose settings have these model-source fields."""
    return make_client(settings.model_copy(update=update), session)


@pytest.fixture
def client_with_root(settings, db_session, roots) -> Iterator[TestClient]:
    """Model roots = [the root of ``roots``], hub names not allowed (the default)."""
    with policy_client(settings, db_session, model_roots=[roots["root"].resolve()], allow_hub=False) as client:
        yield client


def register(client: TestClient, source: str, name: str = "m"):
    """``POST /models/base``."""
    return client.post("/models/base", json={"name": name, "source": source})


def test_the_defaults_allow_no_folder_and_no_hub_name():
    settings = Settings()
    assert settings.model_roots == [] and settings.allow_hub is False


def test_a_folder_under_a_root_is_accepted(client_with_root, roots):
    response = register(client_with_root, str(roots["inside"]))
    assert response.status_code == 201, response.text
    assert response.json()["source"] == str(roots["inside"].resolve())


def test_outside_and_missing_paths_get_the_same_answer(client_with_root, roots):
    outside = register(client_with_root, str(roots["outside"]))  # exists, has a config.json
    missing = register(client_with_root, str(roots["outside"].parent / "absent"))
    assert outside.status_code == missing.status_code == 422
    assert outside.json() == missing.json()
    assert outside.json()["detail"][0]["type"] == "source_not_allowed"


@pytest.mark.parametrize(
    "source",
    ["/etc", "/", "~nosuchuser", "~/x", "../x", "./x", "/" + "a" * 300, "/tmp/" + "b/" * 200, "/x\x00y", "a/b/c",
     "evil-org/evil-model", "bert-base-uncased"],
)  # fmt: skip
def test_refusals_are_422_and_reveal_no_path(client_with_root, source):
    response = register(client_with_root, source)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "source"]
    assert not re.search(r"/(tmp|etc|home|root|usr)\b", response.json()["detail"][0]["msg"])


def test_a_symlink_out_of_a_root_is_outside(client_with_root, roots):
    link = roots["root"] / "escape"
    link.symlink_to(roots["outside"], target_is_directory=True)
    assert register(client_with_root, str(link)).json()["detail"][0]["type"] == "source_not_allowed"
    dotdot = register(client_with_root, f"{roots['root']}/../outside/tiny")
    assert dotdot.status_code == 422 and dotdot.json()["detail"][0]["type"] == "source_not_allowed"


def test_hub_names_only_when_allowed(settings, db_session):
    with policy_client(settings, db_session, allow_hub=False) as client:
        response = register(client, "evil-org/evil-model")
        assert response.status_code == 422 and "DALLMI_ALLOW_HUB" in response.json()["detail"][0]["msg"]
    with policy_client(settings, db_session, allow_hub=True) as client:
        response = register(client, "bert-base-uncased")
        assert response.status_code == 201 and response.json()["source"] == "bert-base-uncased"
        assert register(client, "org/model/extra", name="m2").status_code == 422


def test_the_worker_downloads_only_while_hub_names_are_allowed():
    assert hub_allowed(True, True)
    assert not hub_allowed(True, False)  # registered when allowed, DALLMI_ALLOW_HUB turned off since
    assert not hub_allowed(False, True)


def test_models_that_need_custom_code_are_refused(client_with_root, roots):
    config = roots["inside"] / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "auto_map": {"AutoModel": "x.Model"}}))
    response = register(client_with_root, str(roots["inside"]))
    assert response.status_code == 422 and "custom code" in response.json()["detail"][0]["msg"]
    config.write_text("{not json")
    assert register(client_with_root, str(roots["inside"])).status_code == 422


def test_no_code_ever_trusts_remote_code():
    for folder in ("app", "worker", "dallmi_core", "benchmarks"):
        for path in (REPO / folder).rglob("*.py"):
            assert not re.search(r"trust_remote_code\s*=\s*True", path.read_text(encoding="utf-8")), path


def test_model_roots_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DALLMI_MODEL_ROOTS", f"{tmp_path}/a:{tmp_path}/b, {tmp_path}/c")
    assert Settings().model_roots == [tmp_path / "a", tmp_path / "b", tmp_path / "c"]
    monkeypatch.setenv("DALLMI_MODEL_ROOTS", "relative/models")
    with pytest.raises(ValidationError, match="absolute"):
        Settings()
