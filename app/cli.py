"""The ``dallmi`` console script: dallmi_core's commands plus ``serve`` (API and one worker)."""

from __future__ import annotations

import os
import signal
import sys
from typing import Annotated

import typer

from app.auth.cli import BindRefused, announce, bind_policy, keys_app
from app.config import Settings, get_settings


def worker_command(queue: str) -> list[str]:
    """The command line of one training worker (solo pool: one job at a time, no forked GPU state)."""
    return [
        sys.executable, "-m", "celery", "-A", "worker.main", "worker", "--pool", "solo", "-Q", queue,
        "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def apply_bind_policy(host: str, settings: Settings) -> Settings:
    """Decide whether the API on ``host`` needs keys, say so in a log line and return the settings to run.

    Raises:
        typer.BadParameter: a non-loopback ``host`` without any usable key, or with ``DALLMI_AUTH=disabled``.
    """
    from app.auth.service import count_usable_keys
    from app.db import make_sessionmaker

    with make_sessionmaker(settings.database_url)() as session:
        usable = count_usable_keys(session)
    try:
        mode = bind_policy(host, settings, usable)
    except BindRefused as exc:
        raise typer.BadParameter(str(exc), param_hint="--host") from exc
    announce(mode, host, usable)
    os.environ["DALLMI_AUTH"] = mode  # read by the API (and by uvicorn's worker processes)
    get_settings.cache_clear()
    return get_settings()


def serve(
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to bind")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes of the API")] = 1,
    with_worker: Annotated[bool, typer.Option(help="also start one Celery training worker")] = True,
) -> None:
    """Run the service on this machine: migrate, register minilm-l6, start one training worker and the API.

    On 127.0.0.1 with no API key created it runs without keys (and says so); any other address needs a key
    (`dallmi keys create`). Defaults need no server: SQLite and a filesystem broker under ./.dallmi/
    (see docs/service.md).
    """
    import uvicorn

    from app.migrate import prestart
    from app.supervisor import WorkerSupervisor

    settings = get_settings()
    prestart(settings)
    settings = apply_bind_policy(host, settings)
    # uvicorn re-raises SIGTERM after its graceful shutdown; turn it into SystemExit so the worker below
    # is stopped by the ``finally`` instead of being orphaned.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    worker = None
    if with_worker:  # restarted when it dies; its reaper queues again the jobs of a worker that died
        worker = WorkerSupervisor(
            worker_command(settings.train_queue),
            backoff_max_s=settings.supervisor_backoff_max_s,
            stop_timeout_s=settings.worker_stop_timeout_s,
        ).start()
    try:
        uvicorn.run("app.main:app", host=host, port=port, workers=workers)
    finally:
        if worker is not None:
            worker.stop()  # warm: the running job pauses at its next step and is queued again


def main() -> None:
    """Entry point of the ``dallmi`` console script."""
    try:
        from dallmi_core.cli import app
    except ImportError:  # the library's CLI is optional for the service
        app = typer.Typer(help="DALLMi")
    app.command("serve")(serve)
    app.add_typer(keys_app, name="keys")
    app()


if __name__ == "__main__":
    main()
