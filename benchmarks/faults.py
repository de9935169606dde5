"""Fault benchmark: workers killed at random moments; no job may be lost, stuck or published twice.

Production mode (``--mode production``): a throwaway PostgreSQL database, a private Redis queue, the API
(``uvicorn``) and ``--workers`` Celery workers as real processes. ``--jobs`` fine-tuning jobs of a tiny
random BERT (``dallmi_core.make_tiny_bert``, CPU-cheap) are submitted; then ``--kills`` times, after a
random pause, a random worker is SIGKILLed (one holding the job hit least so far, when any holds one) and a
new one started.

Embedded mode (``--mode embedded``): ``dallmi serve`` (SQLite, filesystem broker, one supervised worker);
the faults cycle through SIGKILL of the worker, SIGTERM of ``dallmi serve`` and SIGKILL of
``dallmi serve``, each followed by a new ``dallmi serve`` where the serve process went down.

Printed: jobs succeeded / failed / stuck, versions (must equal the jobs), and for each fault that hit a
job the seconds from the kill to the job claimed again by another worker and to its first training step
there (goal: under 2 x the heartbeat timeout).

    .venv/bin/python benchmarks/faults.py --mode both --jobs 5 --kills 10 --heartbeat-timeout 10
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from sqlalchemy import func, select

from app.db import make_sessionmaker
from app.jobs.orm import FINAL_STATUSES, RUNNING
from app.orm import Job, ModelVersion
from dallmi_core import Corpus, make_tiny_bert, read_corpus

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "pubmed"
PG_ADMIN = os.environ.get("DALLMI_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("DALLMI_TEST_REDIS", "redis://127.0.0.1:6379/0")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["production", "embedded", "both"], default="both")
    parser.add_argument("--jobs", type=int, default=5)
    parser.add_argument("--kills", type=int, default=10, help="faults in production mode")
    parser.add_argument("--embedded-kills", type=int, default=6, help="faults in embedded mode")
    parser.add_argument("--workers", type=int, default=2, help="live workers at a time (production)")
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--rows", type=int, default=40)
    parser.add_argument("--heartbeat-timeout", type=float, default=10.0)
    parser.add_argument("--max-attempts", type=int, default=12, help="above the kills one job may take")
    parser.add_argument("--pause", type=float, nargs=2, default=(4.0, 10.0), help="random pause between faults")
    parser.add_argument("--timeout", type=float, default=900, help="seconds for every job to finish")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="folder to keep the logs, databases and artifacts in")
    return parser.parse_args(argv)


@dataclass
class Fault:
    """One kill and, when it hit a job, how long until the job ran again elsewhere."""

    kind: str
    at: float
    job_id: int | None
    worker: str | None
    step: int = 0
    claimed_s: float | None = None
    step_s: float | None = None
    claim_step: int | None = None


@dataclass
class Report:
    """What a run of one mode ended with."""

    mode: str
    faults: list[Fault] = field(default_factory=list)
    statuses: dict[int, str] = field(default_factory=dict)
    versions: int = 0
    wall_s: float = 0.0


def _corpus_csv(folder: Path, rows: int) -> Path:
    corpus: Corpus = read_corpus(DATA / "source.csv")
    chosen = list(range(rows))
    for j in range(len(corpus.labels)):  # every label gets a positive
        if not corpus.y[chosen, j].any():
            chosen[-1 - j] = int(np.flatnonzero(corpus.y[:, j])[0])
    path = folder / "source.csv"
    corpus.subset(sorted(set(chosen))).to_wide_csv(path)
    return path


class Service:
    """The processes of one mode, the API's URL and a session factory on its database."""

    def __init__(self, env: dict[str, str], home: Path) -> None:
        self.env, self.home = {**os.environ, **env, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}, home
        self.sessions = make_sessionmaker(env["DALLMI_DATABASE_URL"])
        self.procs: list[subprocess.Popen] = []
        self.url = ""

    def spawn(self, command: list[str], name: str) -> subprocess.Popen:
        """Start a process of the service, its output to ``home/<name>.log``."""
        with (self.home / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(command, cwd=REPO, env=self.env, stdout=log, stderr=log)
        self.procs.append(proc)
        return proc

    def wait_http(self, path: str = "/health", timeout: float = 180) -> None:
        """Until ``path`` answers 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + path, timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"{self.url}{path} not up after {timeout} s")

    def jobs(self) -> dict[int, Job]:
        """Every job row, fresh from the database."""
        with self.sessions() as session:
            return {job.id: job for job in session.scalars(select(Job)).all()}

    def versions(self) -> int:
        """Trained versions in the registry."""
        with self.sessions() as session:
            query = select(func.count()).select_from(ModelVersion).where(ModelVersion.job_id.is_not(None))
            return session.scalar(query) or 0

    def close(self) -> None:
        """SIGKILL whatever is left."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _submit(service: Service, args: argparse.Namespace, folder: Path) -> list[int]:
    model_dir = make_tiny_bert(folder / "tiny")
    with httpx.Client(base_url=service.url, timeout=60) as client:
        assert client.post("/models/base", json={"name": "tiny", "source": str(model_dir)}).status_code == 201
        with _corpus_csv(folder, args.rows).open("rb") as handle:
            corpus = client.post("/corpora", files={"file": ("source.csv", handle)}, data={"name": "src"}).json()
        params = {"epochs": args.epochs, "batch_size": 8, "max_length": 32, "eval_batch_size": 64, "min_steps": 0}
        return [
            client.post("/finetune", json={"corpus_id": corpus["id"], "base_model": "tiny", "name": f"job{i}",
                                           "params": params}).json()["job_id"]  # fmt: skip
            for i in range(args.jobs)
        ]


def _track(service: Service, faults: list[Fault]) -> None:
    """Fill in claimed_s / step_s of the faults whose job ran again since."""
    jobs = service.jobs()
    now = time.monotonic()
    for fault in faults:
        job = jobs.get(fault.job_id) if fault.job_id is not None else None
        if job is None or fault.step_s is not None:
            continue
        if fault.claimed_s is None and job.status == RUNNING and job.worker not in (None, fault.worker):
            fault.claimed_s, fault.claim_step = now - fault.at, job.step
        elif fault.claimed_s is not None and job.step != fault.claim_step:
            fault.step_s = now - fault.at


@contextmanager
def tracking(service: Service, faults: list[Fault]) -> Iterator[None]:
    """Poll the jobs every 0.25 s in a thread while the block runs, filling in the faults' times."""
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(0.25):
            with contextlib.suppress(Exception):  # e.g. SQLite busy while a serve restarts
                _track(service, faults)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _settle(service: Service, fault: Fault, timeout: float) -> None:
    """Until the job the fault hit trains again (or finished), so that each fault is measured alone."""
    deadline = time.monotonic() + timeout
    while fault.job_id is not None and fault.step_s is None and time.monotonic() < deadline:
        if service.jobs()[fault.job_id].status in FINAL_STATUSES:
            return
        time.sleep(0.25)


def _all_final(service: Service) -> bool:
    return all(job.status in FINAL_STATUSES for job in service.jobs().values())


def _held(service: Service, pid: int) -> tuple[int | None, str | None, int]:
    for job in service.jobs().values():
        if job.status == RUNNING and job.worker and job.worker.split(":")[1] == str(pid):
            return job.id, job.worker, job.step
    return None, None, 0


def _finish(service: Service, report: Report, ids: list[int], args: argparse.Namespace, start: float) -> None:
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        jobs = service.jobs()
        if all(jobs[i].status in FINAL_STATUSES for i in ids):
            break
        time.sleep(0.5)
    jobs = service.jobs()
    report.statuses = {i: jobs[i].status for i in ids}
    report.versions = service.versions()
    report.wall_s = time.monotonic() - start


@contextmanager
def _pg_database() -> Iterator[str]:
    """A throwaway PostgreSQL database, dropped afterwards."""
    import psycopg

    from app.db import get_engine

    name = f"dallmi_faults_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    try:
        yield url
    finally:
        get_engine(url).dispose()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_production(args: argparse.Namespace, rng: random.Random, folder: Path) -> Report:
    """SIGKILL random workers of a PostgreSQL + Redis deployment, starting a new one after each."""
    with _pg_database() as url:
        return _run_production(args, rng, folder, url)


def _run_production(args: argparse.Namespace, rng: random.Random, folder: Path, database_url: str) -> Report:
    from app.cli import worker_command
    from app.config import Settings
    from app.migrate import prestart

    env = {
        "DALLMI_DATABASE_URL": database_url,
        "DALLMI_BROKER_URL": REDIS,
        "DALLMI_ARTIFACTS_DIR": str(folder / "artifacts"),
        "DALLMI_TRAIN_QUEUE": f"faults-{uuid.uuid4().hex[:6]}",
        "DALLMI_HEARTBEAT_TIMEOUT_S": str(args.heartbeat_timeout),
        "DALLMI_MAX_ATTEMPTS": str(args.max_attempts),
        "DALLMI_MODEL_ROOTS": str(folder),  # the tiny base model is made there
        "DALLMI_AUTH": "disabled",  # uvicorn on 127.0.0.1 for this benchmark only; production requires keys
    }
    prestart(Settings(database_url=env["DALLMI_DATABASE_URL"], artifacts_dir=Path(env["DALLMI_ARTIFACTS_DIR"])))
    service, report = Service(env, folder), Report("production")
    port = _free_port()
    service.url = f"http://127.0.0.1:{port}"
    service.spawn([sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port)], "api")
    command = worker_command(env["DALLMI_TRAIN_QUEUE"])
    workers = [service.spawn(command, f"worker{i}") for i in range(args.workers)]
    try:
        service.wait_http()
        service.wait_http("/ready")
        start = time.monotonic()
        ids = _submit(service, args, folder)
        with tracking(service, report.faults):
            for k in range(args.kills):
                time.sleep(rng.uniform(*args.pause))
                if _all_final(service):
                    break
                hits = [f.job_id for f in report.faults]
                holding = [w for w in workers if _held(service, w.pid)[0] is not None]
                fewest = min((hits.count(_held(service, w.pid)[0]) for w in holding), default=0)
                least_hit = [w for w in holding if hits.count(_held(service, w.pid)[0]) == fewest]
                victim = rng.choice(least_hit or workers)  # spread the kills over the jobs
                job_id, worker, step = _held(service, victim.pid)
                fault = Fault("worker SIGKILL", time.monotonic(), job_id, worker, step)
                victim.kill()
                victim.wait()
                report.faults.append(fault)
                workers[workers.index(victim)] = service.spawn(command, f"worker{args.workers + k}")
                _settle(service, fault, timeout=10 * args.heartbeat_timeout)
            _finish(service, report, ids, args, start)
    finally:
        service.close()
    return report


def run_embedded(args: argparse.Namespace, rng: random.Random, folder: Path) -> Report:
    """Kill the worker of ``dallmi serve``, or ``dallmi serve`` itself (then start it again)."""
    env = {"DALLMI_DATABASE_URL": f"sqlite:///{folder / 'dallmi.db'}", "DALLMI_BROKER_URL": "filesystem://",
           "DALLMI_ARTIFACTS_DIR": str(folder / "artifacts"), "DALLMI_HEARTBEAT_TIMEOUT_S": str(args.heartbeat_timeout),
           "DALLMI_MAX_ATTEMPTS": str(args.max_attempts), "DALLMI_SUPERVISOR_BACKOFF_MAX_S": "5",
           "DALLMI_MODEL_ROOTS": str(folder)}  # fmt: skip
    service, report = Service(env, folder), Report("embedded")

    def serve(n: int) -> subprocess.Popen:
        port = _free_port()
        service.url = f"http://127.0.0.1:{port}"
        proc = service.spawn([sys.executable, "-m", "app.cli", "serve", "--port", str(port)], f"serve{n}")
        service.wait_http()
        return proc

    kinds = ["worker SIGKILL", "serve SIGTERM", "serve SIGKILL"]
    try:
        proc = serve(0)
        service.wait_http("/ready")
        start = time.monotonic()
        ids = _submit(service, args, folder)
        with tracking(service, report.faults):
            for k in range(args.embedded_kills):
                time.sleep(rng.uniform(*args.pause))
                if _all_final(service):
                    break
                proc = _embedded_fault(service, report, kinds[k % len(kinds)], proc, lambda n=k + 1: serve(n))
                _settle(service, report.faults[-1], timeout=10 * args.heartbeat_timeout)
            _finish(service, report, ids, args, start)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=300)
    finally:
        service.close()
    return report


def _embedded_fault(service: Service, report: Report, kind: str, proc: subprocess.Popen,
                    restart: Callable[[], subprocess.Popen]) -> subprocess.Popen:  # fmt: skip
    """Inject one fault of ``kind`` into ``dallmi serve`` (``proc``); the serve process running after it."""
    jobs = [job for job in service.jobs().values() if job.status == RUNNING and job.worker]
    job = jobs[0] if jobs else None
    kind = "serve SIGKILL" if kind == "worker SIGKILL" and job is None else kind
    fault = Fault(kind, time.monotonic(), job.id if job else None, job.worker if job else None, job.step if job else 0)
    if kind == "worker SIGKILL" and job is not None and job.worker:
        os.kill(int(job.worker.split(":")[1]), signal.SIGKILL)
    else:
        proc.send_signal(signal.SIGTERM if kind == "serve SIGTERM" else signal.SIGKILL)
        proc.wait(timeout=300)
    report.faults.append(fault)
    return restart() if proc.poll() is not None else proc


def _figures(values: list[float]) -> str:
    if not values:
        return "-"
    return f"median {statistics.median(values):.1f} s, max {max(values):.1f} s (n={len(values)})"


def print_report(report: Report, args: argparse.Namespace) -> None:
    """The figures of one mode."""
    counts = {s: list(report.statuses.values()).count(s) for s in ("succeeded", "failed", "cancelled")}
    stuck = sum(1 for s in report.statuses.values() if s not in FINAL_STATUSES)
    hit = [f for f in report.faults if f.job_id is not None]
    claimed = [f.claimed_s for f in hit if f.claimed_s is not None]
    stepped = [f.step_s for f in hit if f.step_s is not None]
    print(f"== {report.mode}: {len(report.statuses)} jobs, {len(report.faults)} faults ({len(hit)} hit a running "
          f"job), heartbeat timeout {args.heartbeat_timeout:g} s, wall {report.wall_s:.0f} s")  # fmt: skip
    print(f"jobs succeeded {counts['succeeded']}, failed {counts['failed']}, stuck {stuck}; "
          f"versions {report.versions} (expected {len(report.statuses)})")  # fmt: skip
    print(f"kill -> job claimed by another worker: {_figures(claimed)}")
    print(f"kill -> first training step there:     {_figures(stepped)}  (goal < {2 * args.heartbeat_timeout:g} s)")
    for fault in report.faults:
        where = f"job {fault.job_id} at step {fault.step}" if fault.job_id is not None else "no job held"
        times = f"claimed {fault.claimed_s or float('nan'):.1f} s, stepped {fault.step_s or float('nan'):.1f} s"
        print(f"  {fault.kind:<15} {where:<24} {times if fault.job_id is not None else ''}")


def main(argv: list[str] | None = None) -> list[Report]:
    """Run the chosen modes and print their figures."""
    args = parse_args(argv)
    rng = random.Random(args.seed)
    reports = []
    modes = ["production", "embedded"] if args.mode == "both" else [args.mode]
    for mode in modes:
        with contextlib.ExitStack() as stack:
            if args.keep is not None:
                folder = args.keep / mode
                folder.mkdir(parents=True, exist_ok=True)
            else:
                folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"dallmi-faults-{mode}-")))
            runner = run_production if mode == "production" else run_embedded
            report = runner(args, rng, folder)
            print_report(report, args)
            reports.append(report)
    return reports


if __name__ == "__main__":
    main()
