"""The model registry: built-in and registered base models, references, aliases with history."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.models.orm import ModelVersion, RegisteredModel


def add_trained(session: Session, name: str, labels: list[str], versions: int = 1) -> list[ModelVersion]:
    """Registry rows of a trained model (no checkpoint files: for registry and validation tests only)."""
    model = RegisteredModel(name=name, kind="trained")
    rows = [
        ModelVersion(model=model, version=n, source=f"/nowhere/{n}", path=f"models/{name}/{n}", labels=labels,
                     thresholds=[0.5] * len(labels), checksums={})
        for n in range(1, versions + 1)
    ]  # fmt: skip
    session.add_all([model, *rows])
    session.commit()
    return rows


def test_builtin_base_model_is_registered_on_start(client):
    body = client.get("/models/minilm-l6").json()
    assert body["kind"] == "base" and [v["version"] for v in body["versions"]] == [1]
    assert client.get("/models/minilm-l6/versions/1").json()["source"] == "minilm-l6"


def test_register_a_local_folder_and_a_hub_name(client, tiny_model_dir):
    response = client.post("/models/base", json={"name": "tiny-local", "source": str(tiny_model_dir)})
    assert response.status_code == 201, response.text
    assert response.json()["ref"] == "tiny-local:1" and response.json()["labels"] is None
    response = client.post("/models/base", json={"name": "bert", "source": "bert-base-uncased"})
    assert response.status_code == 201 and response.json()["source"] == "bert-base-uncased"
    assert {"tiny-local", "bert"} <= {m["name"] for m in client.get("/models").json()["data"]}


def test_register_refuses_duplicates_missing_folders_and_bad_names(client, tmp_path):
    assert client.post("/models/base", json={"name": "minilm-l6", "source": "minilm-l6"}).status_code == 409
    response = client.post("/models/base", json={"name": "x", "source": str(tmp_path / "absent")})
    assert response.status_code == 404 and "config.json" in response.json()["detail"][0]["msg"]
    response = client.post("/models/base", json={"name": "x", "source": str(tmp_path)})
    assert response.status_code == 404 and "config.json" in response.json()["detail"][0]["msg"]
    response = client.post("/models/base", json={"name": "../evil", "source": "minilm-l6"})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "name"]


def test_unknown_model_and_version_are_404(client):
    assert client.get("/models/absent").status_code == 404
    assert client.get("/models/minilm-l6/versions/9").json()["detail"][0]["msg"] == "model minilm-l6 has no version 9"


def test_alias_moves_are_recorded_in_history(client, db_session):
    add_trained(db_session, "clf", ["A", "B"], versions=2)
    assert client.put("/models/clf/aliases/production", json={"version": 1}).json()["version"] == 1
    assert client.put("/models/clf/aliases/production", json={"version": 2}).json()["version"] == 2
    body = client.get("/models/clf/aliases").json()
    assert [(a["alias"], a["version"]) for a in body["aliases"]] == [("production", 2)]
    assert [(e["from_version"], e["to_version"]) for e in body["history"]] == [(None, 1), (1, 2)]
    assert client.get("/models/clf").json()["aliases"] == {"production": 2}


def test_alias_to_a_missing_version_is_404_and_changes_nothing(client, db_session):
    add_trained(db_session, "clf", ["A"])
    response = client.put("/models/clf/aliases/production", json={"version": 5})
    assert response.status_code == 404 and response.json()["detail"][0]["loc"] == ["body", "version"]
    assert client.get("/models/clf/aliases").json() == {"aliases": [], "history": []}
