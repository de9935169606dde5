"""The whole service flow once, through the HTTP API, timed step by step.

Upload the PubMed source corpus, fine-tune the bundled MiniLM-L6 on it, upload the target training corpus
with half of each label's positives hidden (``dallmi_core.hide_labels``, ratio 0.5), adapt with DALLMi,
then score ``target_test.csv`` through ``POST /predict`` and report mAP (``dallmi_core.evaluate_scores``).

By default it starts its own embedded service (``dallmi serve``: SQLite, filesystem broker, one worker)
in a temporary folder; ``--url`` uses a running one instead.

    .venv/bin/python benchmarks/service_flow.py --epochs 1 --rows 160 --max-length 64
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from pathlib import Path

import httpx
import numpy as np

from dallmi_core import Corpus, evaluate_scores, hide_labels, read_corpus

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "pubmed"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running service; default: start an embedded one")
    parser.add_argument("--data", type=Path, default=DATA, help="corpus folder (source/target_train/target_test)")
    parser.add_argument("--base-model", default="minilm-l6")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--rows", type=int, default=0, help="first rows of source and target_train (0: all)")
    parser.add_argument("--test-rows", type=int, default=0, help="first rows of target_test (0: all)")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--ratio", type=float, default=0.5, help="share of target positives kept")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--method", choices=["dallmi", "bce"], default="dallmi")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for each job")
    return parser.parse_args(argv)


class Timer:
    """Prints each step's wall time as it ends."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time the block as step ``name``."""
        start = time.perf_counter()
        yield
        self.times[name] = time.perf_counter() - start
        print(f"{name:<28} {self.times[name]:8.1f} s", flush=True)


@contextmanager
def serve_in(home: Path, port: int, extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """``dallmi serve`` with SQLite, the filesystem broker and one worker under ``home``; yields its URL."""
    env = {
        **os.environ,
        "DALLMI_DATABASE_URL": f"sqlite:///{home}/dallmi.db",
        "DALLMI_BROKER_URL": "filesystem://",
        "DALLMI_ARTIFACTS_DIR": f"{home}/artifacts",
        **(extra_env or {}),
    }
    log = Path(home) / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, log)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=60)


@contextmanager
def embedded_service(port: int) -> Iterator[str]:
    """:func:`serve_in` a temporary home."""
    with tempfile.TemporaryDirectory(prefix="dallmi-bench-") as home, serve_in(Path(home), port) as url:
        yield url


def wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    """Poll ``/ready`` until the service answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dallmi serve exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/ready", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise TimeoutError("the service did not become ready")


def head(corpus: Corpus, rows: int) -> Corpus:
    """The first ``rows`` rows (all when 0)."""
    return corpus if rows <= 0 or rows >= corpus.n_rows else corpus.subset(list(range(rows)))


def upload(client: httpx.Client, corpus: Corpus, name: str, folder: Path) -> int:
    """Upload a corpus as wide CSV; returns its id."""
    path = folder / f"{name}.csv"
    corpus.to_wide_csv(path)
    with path.open("rb") as handle:
        response = client.post("/corpora", files={"file": (path.name, handle)}, data={"name": name})
    response.raise_for_status()
    return response.json()["id"]


def run_job(client: httpx.Client, route: str, body: dict, timeout: float) -> dict:
    """Submit a job and poll it to the end; returns the final job."""
    response = client.post(route, json=body)
    response.raise_for_status()
    job_id, deadline = response.json()["job_id"], time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            if job["status"] != "succeeded":
                raise RuntimeError(f"job {job_id} {job['status']}: {job['error']}")
            return job
        time.sleep(1.0)
    raise TimeoutError(f"job {job_id} did not finish in {timeout} s")


def predict_matrix(client: httpx.Client, model: str, texts: list[str], labels: list[str]) -> np.ndarray:
    """Scores ``(N, L)`` in ``labels`` order from ``POST /predict``, 32 texts per request."""
    scores = np.zeros((len(texts), len(labels)), dtype=np.float32)
    column = {label: j for j, label in enumerate(labels)}
    for start in range(0, len(texts), 32):
        response = client.post("/predict", json={"model": model, "texts": texts[start : start + 32]})
        response.raise_for_status()
        for result in response.json()["results"]:
            for item in result["scores"]:
                scores[start + result["index"], column[item["label"]]] = item["score"]
    return scores


def flow(url: str, args: argparse.Namespace, timer: Timer, folder: Path) -> dict:
    """Upload, fine-tune, adapt, predict; returns the evaluation of the adapted version."""
    params = {"epochs": args.epochs, "max_length": args.max_length, "batch_size": args.batch_size, "seed": args.seed}
    source = head(read_corpus(args.data / "source.csv"), args.rows)
    target = hide_labels(head(read_corpus(args.data / "target_train.csv"), args.rows), args.ratio, args.seed)
    test = head(read_corpus(args.data / "target_test.csv"), args.test_rows)
    with httpx.Client(base_url=url, timeout=600) as client:
        with timer.step("upload source"):
            source_id = upload(client, source, "source", folder)
        with timer.step("finetune (source)"):
            finetuned = run_job(
                client,
                "/finetune",
                {"corpus_id": source_id, "base_model": args.base_model, "name": "bench-source", "params": params},
                args.timeout,
            )
        with timer.step("upload target (hidden)"):
            target_id = upload(client, target, "target", folder)
        with timer.step(f"adapt ({args.method})"):
            adapted = run_job(client, "/adapt", {"corpus_id": target_id, "base_model": finetuned["result_version"],
                                                 "name": "bench-target", "method": args.method, "params": params},
                              args.timeout)  # fmt: skip
        version = client.get(f"/models/bench-target/versions/{adapted['result_version'].split(':')[1]}").json()
        with timer.step(f"predict {test.n_rows} texts"):
            scores = predict_matrix(client, adapted["result_version"], test.texts, version["labels"])
    y_true = test.y[:, [test.labels.index(label) for label in version["labels"]]]
    return evaluate_scores(y_true, scores, version["labels"], np.asarray(version["thresholds"]))


def main(argv: list[str] | None = None) -> None:
    """Run the flow once and print the step times and the final mAP."""
    args = parse_args(argv)
    timer = Timer()
    print(
        f"service flow: base={args.base_model} epochs={args.epochs} rows={args.rows or 'all'} "
        f"max_length={args.max_length} batch={args.batch_size} ratio={args.ratio} method={args.method}"
    )
    start = time.perf_counter()
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        service = nullcontext(args.url) if args.url else embedded_service(args.port)
        with timer.step("start service"):
            url = stack.enter_context(service)
        result = flow(url, args, timer, folder)
    print(f"{'total':<28} {time.perf_counter() - start:8.1f} s")
    print(
        f"target_test mAP = {result['mAP']:.4f}  micro_AP = {result['micro_AP']:.4f}  "
        f"macro_F1 = {result['macro_F1']:.4f}  (base {args.base_model}, CPU)"
    )


if __name__ == "__main__":
    main()
