"""Deleting model versions: refused while an alias or an active job needs them; files removed; a version that
others refer to stays as a readable tombstone, one that nothing refers to goes with its model name."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.artifacts import ArtifactStore
from app.jobs.orm import Job
from app.models.orm import ModelVersion

from .helpers import upload
from .test_models import add_trained


def lineage(session: Session, name: str, labels: list[str], versions: int) -> list[ModelVersion]:
    """Trained versions, each the parent of the next (as adapting a fine-tuned version records)."""
    rows = add_trained(session, name, labels, versions=versions)
    for parent, child in zip(rows, rows[1:], strict=False):
        child.parent_version_id = parent.id
    session.commit()
    return rows


def add_job(session: Session, base: ModelVersion, status: str, result: ModelVersion | None = None) -> Job:
    """A job row starting from ``base``."""
    job = Job(kind="adapt", name="clf", method="dallmi", base_version_id=base.id, request_hash="0" * 64,
              status=status, result_version_id=result.id if result else None)  # fmt: skip
    session.add(job)
    session.commit()
    return job


def test_deleting_an_unused_base_model_frees_its_name(client, tiny_model_dir):
    assert client.post("/models/base", json={"name": "junk", "source": str(tiny_model_dir)}).status_code == 201
    response = client.delete("/models/junk/versions/1")
    assert response.status_code == 204, response.text
    assert tiny_model_dir.is_dir()  # a base model's own folder is never touched
    assert client.get("/models/junk").status_code == 404
    assert client.post("/models/base", json={"name": "junk", "source": "minilm-l6"}).status_code == 201


def test_a_version_with_an_alias_is_409_until_the_alias_moves(client, db_session):
    lineage(db_session, "clf", ["A"], versions=2)
    client.put("/models/clf/aliases/production", json={"version": 1})
    response = client.delete("/models/clf/versions/1")
    assert response.status_code == 409 and "production" in response.json()["detail"][0]["msg"]
    client.put("/models/clf/aliases/production", json={"version": 2})
    assert client.delete("/models/clf/versions/1").status_code == 204


def test_a_base_of_a_queued_or_running_job_is_409(client, db_session):
    (v1,) = add_trained(db_session, "clf", ["A"])
    for status in ("queued", "running"):
        job = add_job(db_session, v1, status)
        response = client.delete("/models/clf/versions/1")
        assert response.status_code == 409 and str(job.id) in response.json()["detail"][0]["msg"]
        job.status = "succeeded"
        db_session.commit()
    assert client.delete("/models/clf/versions/1").status_code == 204


def test_a_parent_stays_readable_as_a_tombstone_and_its_files_go(client, db_session, settings):
    v1, v2 = lineage(db_session, "clf", ["A", "B"], versions=2)
    job = add_job(db_session, v1, "succeeded", result=v2)
    v1.job_id = job.id
    db_session.commit()
    store = ArtifactStore(settings.artifacts_dir)
    for folder in (store.resolve(v1.path), store.job_dir(job.id)):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "model.safetensors").write_bytes(b"weights")

    assert client.delete("/models/clf/versions/1").status_code == 204
    assert not store.resolve(v1.path).exists() and not store.job_dir(job.id).exists()
    tombstone = client.get("/models/clf/versions/1").json()
    assert tombstone["deleted_at"] is not None and tombstone["labels"] == ["A", "B"]
    assert client.get("/models/clf/versions/2").json()["parent"] == "clf:1"  # lineage still readable
    summary = {v["version"]: v["deleted_at"] for v in client.get("/models/clf").json()["versions"]}
    assert summary[1] is not None and summary[2] is None


def test_a_deleted_version_cannot_be_used_any_more(client, db_session, source_csv):
    lineage(db_session, "clf", ["A"], versions=2)
    assert client.delete("/models/clf/versions/1").status_code == 204  # kept: the parent of clf:2
    response = client.get("/predict", params={"model": "clf:1", "text": "x"})
    assert response.status_code == 404 and response.json()["detail"][0]["type"] == "deleted"
    assert client.put("/models/clf/aliases/production", json={"version": 1}).status_code == 404
    body = {"corpus_id": upload(client, source_csv)["id"], "base_model": "clf:1", "name": "next"}
    response = client.post("/finetune", json=body)
    assert response.status_code == 404 and response.json()["detail"][0]["type"] == "deleted"
    assert client.put("/models/clf/aliases/production", json={"version": 2}).json()["version"] == 2
    response = client.delete("/models/clf/versions/1")
    assert response.status_code == 404 and response.json()["detail"][0]["type"] == "deleted"


def test_a_version_nothing_refers_to_goes_entirely(client, db_session):
    lineage(db_session, "clf", ["A"], versions=2)
    assert client.delete("/models/clf/versions/2").status_code == 204  # a leaf without jobs or aliases
    assert client.get("/models/clf/versions/2").status_code == 404
    assert [v["version"] for v in client.get("/models/clf").json()["versions"]] == [1]


def test_deleting_a_missing_version_is_404(client):
    assert client.delete("/models/absent/versions/1").status_code == 404
    assert client.delete("/models/minilm-l6/versions/7").status_code == 404


def test_the_latest_live_version_is_what_a_bare_name_means(client, db_session):
    from app.models.service import resolve_ref

    v1, v2, v3 = add_trained(db_session, "clf", ["A"], versions=3)
    add_job(db_session, v3, "succeeded")  # keeps v3 as a tombstone
    assert client.delete("/models/clf/versions/3").status_code == 204
    assert resolve_ref(db_session, ref="clf", loc=("x",)).version == 2
