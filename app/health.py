"""Liveness and readiness."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter
from sqlalchemy import text

from app.config import Settings, SettingsDep
from app.db import SessionDep
from app.deps import StoreDep
from app.errors import ErrorItem, UnavailableError, error_responses
from app.jobs.reaper import live_workers
from app.queue import QueueDep

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)


@router.get("/health")
def health() -> dict:
    """The process is up."""
    return {"status": "ok"}


class NoLiveWorker(Exception):
    """No training worker of the queue sent a heartbeat recently."""


def _worker_check(session, settings: Settings):
    def check() -> None:
        if not live_workers(session, queue=settings.train_queue, heartbeat_timeout_s=settings.heartbeat_timeout_s):
            raise NoLiveWorker(
                f"no training worker on queue {settings.train_queue!r} sent a heartbeat in the last "
                f"{settings.heartbeat_timeout_s:g} s; jobs stay queued until one runs"
            )

    return check


@router.get("/ready", responses=error_responses(503))
async def ready(session: SessionDep, store: StoreDep, queue: QueueDep, settings: SettingsDep) -> dict:
    """Database, broker, artifact store and (unless ``DALLMI_READY_REQUIRES_WORKER=false``) a live training
    worker; 503 naming each that is not."""
    checks = {
        "database": lambda: session.execute(text("SELECT 1")),
        "broker": queue.ping,
        "artifacts": store.check_writable,
    }
    if settings.ready_requires_worker:
        checks["worker"] = _worker_check(session, settings)
    failures: list[ErrorItem] = []
    for name, check in checks.items():
        try:
            await asyncio.to_thread(check)
        except NoLiveWorker as exc:
            failures.append(ErrorItem(loc=(name,), msg=str(exc), type="unavailable"))
        except Exception as exc:  # the class only: /ready is open, its answer must not show hosts or paths
            log.warning("readiness check %s failed: %s", name, exc)
            msg = f"{name} unreachable ({type(exc).__name__})"
            failures.append(ErrorItem(loc=(name,), msg=msg, type="unavailable"))
    if failures:
        raise UnavailableError(items=failures)
    return {"status": "ready", "checks": {name: "ok" for name in checks}}
