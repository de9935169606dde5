"""The ``--via-api`` client against an in-process stand-in of the service's REST API (httpx MockTransport)
that trains with dallmi_core: the same cell gives the same mAP through the API as through the library."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from reproduce_api import ApiClient, ApiRunner, ServiceError
from reproduce_cells import Cell, CellCache, Settings, data_hashes, load_corpora
from reproduce_local import run_cell

from dallmi_core import Predictor, TrainConfig, adapt, finetune, read_corpus


def _multipart_file(request: httpx.Request) -> bytes:
    boundary = request.headers["content-type"].split("boundary=")[1].encode()
    for part in request.content.split(b"--" + boundary):
        head, _, body = part.partition(b"\r\n\r\n")
        if b'name="file"' in head:
            return body.rsplit(b"\r\n", 1)[0]
    raise AssertionError("no file field")


class FakeService:
    """Just enough of app/ for the client: corpora, jobs run at once, a registry and /predict."""

    def __init__(self, root: Path) -> None:
        self.root, self.corpora, self.models, self.jobs = root, {}, {}, {}
        self.polls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        if method == "POST" and path == "/corpora":
            self.corpora[len(self.corpora) + 1] = read_corpus(_multipart_file(request))
            return httpx.Response(201, json={"id": len(self.corpora)})
        if method == "POST" and path in ("/finetune", "/adapt"):
            return httpx.Response(202, json={"job_id": self._train(path[1:], json.loads(request.content)),
                                             "status": "queued"})
        if method == "GET" and path.startswith("/jobs/"):
            self.polls += 1
            job = self.jobs[int(path.rsplit("/", 1)[1])]
            return httpx.Response(200, json=job if self.polls % 2 == 0 else {**job, "status": "running"})
        if method == "POST" and path == "/predict":
            return httpx.Response(200, json=self._predict(json.loads(request.content)))
        return httpx.Response(404, json={"detail": [{"loc": ["path"], "msg": "not found", "type": "missing"}]})

    def _train(self, kind: str, body: dict[str, Any]) -> int:
        job_id = len(self.jobs) + 1
        start = datetime.now(timezone.utc).isoformat()
        out = self.root / f"job{job_id}"
        config = TrainConfig.from_dict(body["params"])
        corpus = self.corpora[body["corpus_id"]]
        if kind == "finetune":
            result = finetune(base=body["base_model"], corpus=corpus, config=config, out_dir=out)
        else:
            result = adapt(base=self.models[body["base_model"]], corpus=corpus, config=config, out_dir=out,
                           method=body["method"], eval_corpus=self.corpora[body["eval_corpus_id"]])
        ref = f"{body['name']}:1"
        self.models[ref] = str(result.checkpoint_dir)
        self.jobs[job_id] = {"id": job_id, "status": "succeeded", "metrics": result.history, "error": None,
                             "result_version": ref, "started_at": start,
                             "finished_at": datetime.now(timezone.utc).isoformat()}
        return job_id

    def _predict(self, body: dict[str, Any]) -> dict[str, Any]:
        predictor = Predictor.load(self.models[body["model"]], device="cpu")
        scores = predictor.predict_scores(body["texts"])
        results = [{"index": i, "predicted": [], "scores": sorted(
            ({"label": name, "score": float(s)} for name, s in zip(predictor.labels, row, strict=True)),
            key=lambda item: -item["score"])} for i, row in enumerate(scores)]  # best first, as the service
        return {"model": body["model"], "thresholds": {}, "results": results}


def test_api_cell_matches_the_library(toy_data: Path, tiny_bert: str, tmp_path: Path) -> None:
    settings = Settings(base=tiny_bert, epochs=1, max_length=16, batch_size=8, lr=5e-3, device="cpu")
    hashes = data_hashes(toy_data, "toy")
    corpora = load_corpora(toy_data, "toy", settings)
    cell = Cell("toy", "dallmi", 0.5, 0, settings=settings)
    local = run_cell(cell, CellCache(tmp_path / "core"), hashes, corpora, log=lambda _: None)
    api_settings = Settings(**{**settings.__dict__, "via": "api"})
    service = FakeService(tmp_path / "service")
    client = ApiClient("http://fake", client=httpx.Client(transport=httpx.MockTransport(service),
                                                          base_url="http://fake"), poll_s=0, predict_chunk=5)
    cache = CellCache(tmp_path / "api")
    runner = ApiRunner(client, "http://fake", cache)
    remote = runner.run_cell(Cell("toy", "dallmi", 0.5, 0, settings=api_settings), hashes, corpora, log=lambda _: None)
    assert remote["metrics"]["mAP"] == pytest.approx(local["metrics"]["mAP"], abs=1e-6)
    assert remote["history"][0]["mAP"] == pytest.approx(local["history"][0]["mAP"], abs=1e-6)
    assert remote["train_s"] is not None and remote["model"].startswith("repro-toy-dallmi")
    none = runner.run_cell(Cell("toy", "none", 1.0, 0, settings=api_settings), hashes, corpora, log=lambda _: None)
    assert len(service.corpora) == 3 and sum(1 for j in service.jobs.values() if "source" in j["result_version"]) == 1
    assert 0 <= none["metrics"]["mAP"] <= 1 and len(list(cache.cells_dir.glob("*.json"))) == 3


def test_api_errors_are_reported(tmp_path: Path) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(422, json={"detail": [{"msg": "bad"}]}))
    client = ApiClient("http://fake", client=httpx.Client(transport=transport, base_url="http://fake"))
    with pytest.raises(ServiceError, match="422"):
        client.submit("finetune", {})
