"""Running cells through the service's REST API (``--via-api URL``) instead of dallmi_core: corpora are
uploaded (POST /corpora), models trained by jobs (POST /finetune, POST /adapt, polled with GET /jobs/{id})
and target_test scored with POST /predict; the metrics are computed here on the returned scores."""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from reproduce_cells import Cell, CellCache
from reproduce_local import HEADLINE

from dallmi_core import Corpus, evaluate_scores, hide_labels

FINAL = ("succeeded", "failed", "cancelled")


class ServiceError(RuntimeError):
    """The service refused a request or a job did not succeed."""


class ApiClient:
    """A thin httpx client of the DALLMi service."""

    def __init__(self, url: str, *, client: httpx.Client | None = None, poll_s: float = 2.0,
                 timeout_s: float = 24 * 3600, predict_chunk: int = 128) -> None:
        self.http = client or httpx.Client(base_url=url, timeout=120.0)
        self.poll_s, self.timeout_s, self.predict_chunk = poll_s, timeout_s, predict_chunk

    def _json(self, response: httpx.Response, expected: int) -> Any:
        if response.status_code != expected:
            raise ServiceError(f"{response.request.method} {response.request.url.path} -> "
                               f"{response.status_code}: {response.text[:500]}")
        return response.json()

    def upload(self, corpus: Corpus, name: str) -> int:
        """POST /corpora (multipart ``file`` + form ``name``); returns the corpus id."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{name}.csv"
            corpus.to_wide_csv(path)
            with open(path, "rb") as handle:
                response = self.http.post("/corpora", files={"file": (path.name, handle, "text/csv")},
                                          data={"name": name, "format": "wide"})
        return int(self._json(response, 201)["id"])

    def submit(self, kind: str, body: dict[str, Any]) -> int:
        """POST /finetune or /adapt; returns the job id."""
        return int(self._json(self.http.post(f"/{kind}", json=body), 202)["job_id"])

    def wait(self, job_id: int) -> dict[str, Any]:
        """Poll GET /jobs/{id} until the job is final; returns the succeeded job."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            job = self._json(self.http.get(f"/jobs/{job_id}"), 200)
            if job["status"] in FINAL:
                break
            if time.monotonic() > deadline:
                raise ServiceError(f"job {job_id} still {job['status']} after {self.timeout_s:.0f} s")
            time.sleep(self.poll_s)
        if job["status"] != "succeeded":
            raise ServiceError(f"job {job_id} {job['status']}: {job.get('error')}")
        return job

    def predict(self, model: str, texts: list[str], labels: list[str]) -> np.ndarray:
        """POST /predict in chunks; returns ``(N, L)`` scores in the order of ``labels``."""
        column = {name: j for j, name in enumerate(labels)}
        out = np.zeros((len(texts), len(labels)), dtype=np.float32)
        for start in range(0, len(texts), self.predict_chunk):
            chunk = texts[start : start + self.predict_chunk]
            body = self._json(self.http.post("/predict", json={"model": model, "texts": chunk}), 200)
            for result in body["results"]:
                for item in result["scores"]:
                    out[start + result["index"], column[item["label"]]] = item["score"]
        return out


def _job_seconds(job: dict[str, Any]) -> float | None:
    if not job.get("started_at") or not job.get("finished_at"):
        return None
    started = datetime.fromisoformat(job["started_at"].replace("Z", "+00:00"))
    return (datetime.fromisoformat(job["finished_at"].replace("Z", "+00:00")) - started).total_seconds()


def _params(cell: Cell, variant: str) -> dict[str, Any]:
    config = cell.settings.train_config(cell.seed, variant).to_dict()
    return {k: v for k, v in config.items() if k != "extra"}


def _model_name(cell: Cell, hashes: dict[str, str]) -> str:
    return f"repro-{cell.name}-{cell.key(hashes)}".replace("_", "-")[:100]


class ApiRunner:
    """Runs cells through the service; corpus uploads and source models are remembered per URL."""

    def __init__(self, client: ApiClient, url: str, cache: CellCache) -> None:
        self.client, self.cache = client, cache
        self.memo_path = cache.root / "api" / f"{hashlib.sha256(url.encode()).hexdigest()[:12]}.json"
        self.memo: dict[str, Any] = json.loads(self.memo_path.read_text()) if self.memo_path.is_file() else {}

    def _remember(self, key: str, value: Any) -> Any:
        self.memo[key] = value
        self.memo_path.parent.mkdir(parents=True, exist_ok=True)
        self.memo_path.write_text(json.dumps(self.memo, indent=1))
        return value

    def corpus_id(self, corpus: Corpus, name: str) -> int:
        key = f"corpus:{corpus.content_hash}"
        return self.memo[key] if key in self.memo else self._remember(key, self.client.upload(corpus, name))

    def source_ref(self, cell: Cell, hashes: dict[str, str], corpora: dict[str, Corpus], log: Any) -> str:
        source = cell.source()
        key = f"source:{source.key(hashes)}"
        if key in self.memo:
            return str(self.memo[key])
        log(f"[api] fine-tuning {source.name}")
        start = time.perf_counter()
        body = {"corpus_id": self.corpus_id(corpora["source"], f"{cell.corpus}-source"),
                "base_model": cell.settings.base, "name": _model_name(source, hashes),
                "params": _params(source, "default")}
        job = self.client.wait(self.client.submit("finetune", body))
        self.cache.save(source, hashes, {"metrics": {}, "history": job["metrics"], "job_id": job["id"],
                                         "wall_s": time.perf_counter() - start, "train_s": _job_seconds(job)})
        return str(self._remember(key, job["result_version"]))

    def run_cell(self, cell: Cell, hashes: dict[str, str], corpora: dict[str, Corpus],
                 log: Any = print) -> dict[str, Any]:
        """Run one cell through the API and cache its record."""
        test = corpora["target_test"]
        ref, start = self.source_ref(cell, hashes, corpora, log), time.perf_counter()
        record: dict[str, Any] = {"history": [], "train_s": 0.0, "source_model": ref}
        if cell.method != "none":
            train = hide_labels(corpora["target_train"], cell.ratio, cell.seed)
            body = {"corpus_id": self.corpus_id(train, f"{cell.corpus}-train-r{cell.ratio:g}-s{cell.seed}"),
                    "base_model": ref, "name": _model_name(cell, hashes), "method": cell.method,
                    "eval_corpus_id": self.corpus_id(test, f"{cell.corpus}-test"),
                    "params": _params(cell, cell.variant)}
            job = self.client.wait(self.client.submit("adapt", body))
            ref = job["result_version"]
            record.update(history=job["metrics"], train_s=_job_seconds(job), job_id=job["id"], model=ref,
                          known_positives=train.known_positives)
        scores = self.client.predict(ref, test.texts, test.labels)  # (N, L)
        report = evaluate_scores(test.y, scores, test.labels)
        record.update(metrics={k: report[k] for k in HEADLINE}, wall_s=time.perf_counter() - start,
                      rows={name: c.n_rows for name, c in corpora.items()})
        self.cache.save(cell, hashes, record)
        return record
