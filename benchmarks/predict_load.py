"""Load on ``/predict``: concurrent clients against a MiniLM-L6 version, compared with offline scoring.

Starts an embedded ``dallmi serve`` (SQLite, filesystem broker, one worker) in a temporary folder (or uses
``--url``), fine-tunes the bundled ``minilm-l6`` on a few PubMed rows through the API (a quick job with a
head, so the version can predict), then for each client count runs that many concurrent httpx clients for
``--duration`` seconds, each sending one ``--words``-word text per ``POST /predict``. It prints errors by
kind (only 503 with ``Retry-After`` is allowed), p50/p99 latency, throughput, and the throughput of
offline batched scoring of the same texts in this process (``dallmi_core.Predictor``, the service's batch
size, the same torch thread count) with the service's ratio to it (goal >= 0.8). ``--train-during`` keeps
a training job running on the worker while the clients run.

    .venv/bin/python benchmarks/predict_load.py --clients 32 128 --duration 30
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import torch
import transformers.utils.logging
from prometheus_client.parser import text_string_to_metric_families
from service_flow import DATA, head, run_job, serve_in, upload

from dallmi_core import Predictor, read_corpus


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[32, 128], help="concurrent clients per round")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per round")
    parser.add_argument("--words", type=int, default=40, help="words per text")
    parser.add_argument("--texts", type=int, default=256, help="distinct texts (from PubMed target_test)")
    parser.add_argument("--rows", type=int, default=64, help="source rows of the quick fine-tuning")
    parser.add_argument("--max-length", type=int, default=128, help="max_length of the fine-tuned version")
    parser.add_argument("--batch-size", type=int, default=32, help="the service's DALLMI_PREDICT_BATCH_SIZE")
    parser.add_argument("--train-during", action="store_true", help="keep a training job running meanwhile")
    parser.add_argument("--port", type=int, default=8766)
    return parser.parse_args(argv)


def embedded_service(home: Path, port: int, batch_size: int):
    """``dallmi serve`` under ``home`` (see ``service_flow.serve_in``) with this prediction batch size."""
    return serve_in(home, port, {"DALLMI_PREDICT_BATCH_SIZE": str(batch_size)})


def texts_of(n: int, words: int) -> list[str]:
    """``n`` texts of PubMed's target_test cut (or repeated) to ``words`` words each."""
    out = []
    for text in read_corpus(DATA / "target_test.csv").texts[:n]:
        tokens = text.split()
        out.append(" ".join((tokens * (words // max(len(tokens), 1) + 1))[:words]))
    return out


def train_version(client: httpx.Client, rows: int, max_length: int, folder: Path) -> dict:
    """Fine-tune minilm-l6 on the first ``rows`` PubMed source rows for one epoch; the finished job."""
    corpus_id = upload(client, head(read_corpus(DATA / "source.csv"), rows), "load-source", folder)
    params = {"epochs": 1, "min_steps": 0, "max_length": max_length, "batch_size": 16}
    body = {"corpus_id": corpus_id, "base_model": "minilm-l6", "name": "load-model", "params": params}
    return run_job(client, "/finetune", body, timeout=1800) | {"corpus_id": corpus_id}


async def _client_loop(client: httpx.AsyncClient, model: str, texts: list[str], stop: float, seed: int, out: dict):
    rng = np.random.default_rng(seed)
    while time.monotonic() < stop:
        body = {"model": model, "texts": [texts[int(rng.integers(len(texts)))]]}
        started = time.perf_counter()
        try:
            response = await client.post("/predict", json=body)
        except httpx.HTTPError as exc:
            out["errors"][type(exc).__name__] += 1
            continue
        if response.status_code == 200:
            out["latencies"].append(time.perf_counter() - started)
        elif response.status_code == 503 and "retry-after" in response.headers:
            out["errors"]["503 Retry-After"] += 1
            await asyncio.sleep(float(response.headers["retry-after"]))
        else:
            out["errors"][f"{response.status_code} {response.text[:80]}"] += 1


async def load_round(url: str, model: str, texts: list[str], clients: int, duration: float) -> dict:
    """``clients`` concurrent clients for ``duration`` seconds; latencies of 200s and errors by kind."""
    out: dict = {"latencies": [], "errors": Counter()}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        started = time.monotonic()
        stop = started + duration
        await asyncio.gather(*(_client_loop(client, model, texts, stop, i, out) for i in range(clients)))
        out["wall_s"] = time.monotonic() - started
    return out


def offline_throughput(path: Path, texts: list[str], batch_size: int, seconds: float = 15.0) -> float:
    """Texts/s of ``Predictor.predict_scores`` over ``texts`` in this process, repeated for ``seconds``."""
    predictor = Predictor.load(path, device="cpu")
    predictor.predict_scores(texts[:batch_size], batch_size=batch_size)  # warm-up
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        predictor.predict_scores(texts, batch_size=batch_size)
        done += len(texts)
    return done / (time.perf_counter() - started)


def batch_summary(metrics: str) -> str:
    """Forward passes and mean texts per pass from the service's ``/metrics``."""
    values = {}
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.name in ("dallmi_predict_batch_texts_sum", "dallmi_predict_batch_texts_count"):
                values[sample.name] = sample.value
    passes, texts = values.get("dallmi_predict_batch_texts_count", 0), values.get("dallmi_predict_batch_texts_sum", 0)
    return f"{passes:.0f} forward passes, {texts / max(passes, 1):.1f} texts per pass"


def report(clients: int, result: dict, offline: float) -> None:
    """Print one round's figures."""
    latencies = np.asarray(result["latencies"]) * 1000
    throughput = len(latencies) / result["wall_s"]
    errors = dict(result["errors"]) or {"none": 0}
    p50, p99 = np.percentile(latencies, [50, 99]) if len(latencies) else (float("nan"), float("nan"))
    print(
        f"clients={clients:<4} ok={len(latencies):<6} throughput={throughput:7.1f} texts/s  p50={p50:7.0f} ms  "
        f"p99={p99:7.0f} ms  ratio to offline={throughput / offline:.2f}  errors={errors}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print its figures."""
    args = parse_args(argv)
    transformers.utils.logging.disable_progress_bar()
    texts = texts_of(args.texts, args.words)
    with tempfile.TemporaryDirectory(prefix="dallmi-load-") as tmp:
        home = Path(tmp)
        with embedded_service(home, args.port, args.batch_size) as url, httpx.Client(base_url=url, timeout=600) as http:
            started = time.perf_counter()
            job = train_version(http, args.rows, args.max_length, home)
            model = job["result_version"]
            print(f"fine-tuned {model} in {time.perf_counter() - started:.1f} s", flush=True)
            path = home / "artifacts" / "models" / model.replace(":", "/")
            offline = offline_throughput(path, texts, args.batch_size)
            print(
                f"offline batched scoring: {offline:.1f} texts/s ({len(texts)} texts of {args.words} words, "
                f"batch {args.batch_size}, torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs)",
                flush=True,
            )
            background = None
            if args.train_during:
                params = {"epochs": 50, "min_steps": 0, "max_length": args.max_length, "batch_size": 16}
                body = {"corpus_id": job["corpus_id"], "base_model": "minilm-l6", "name": "load-bg", "params": params}
                background = http.post("/finetune", json=body).json()["job_id"]
                print(f"training job {background} running during the load", flush=True)
            results = {c: asyncio.run(load_round(url, model, texts, c, args.duration)) for c in args.clients}
            print(f"service: {batch_summary(http.get('/metrics').text)}", flush=True)
            after = offline_throughput(path, texts, args.batch_size)
            print(f"offline batched scoring again after the load: {after:.1f} texts/s", flush=True)
            for clients, result in results.items():
                report(clients, result, (offline + after) / 2)
            if background is not None:
                status = http.get(f"/jobs/{background}").json()["status"]
                print(f"training job {background} was {status} during the load", flush=True)
                http.delete(f"/jobs/{background}")


if __name__ == "__main__":
    main()
