"""Liveness and readiness."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from sqlalchemy import text

from app.db import SessionDep
from app.deps import StoreDep
from app.errors import ErrorItem, UnavailableError, error_responses
from app.queue import QueueDep

router = APIRouter(tags=["health"])


@router.get("/health")
def health() -> dict:
    """The process is up."""
    return {"status": "ok"}


@router.get("/ready", responses=error_responses(503))
async def ready(session: SessionDep, store: StoreDep, queue: QueueDep) -> dict:
    """Database, broker and artifact store reachable; 503 naming each that is not."""
    checks = {
        "database": lambda: session.execute(text("SELECT 1")),
        "broker": queue.ping,
        "artifacts": store.check_writable,
    }
    failures: list[ErrorItem] = []
    for name, check in checks.items():
        try:
            await asyncio.to_thread(check)
        except Exception as exc:
            failures.append(ErrorItem(loc=(name,), msg=f"{name} unreachable: {exc}", type="unavailable"))
    if failures:
        raise UnavailableError(items=failures)
    return {"status": "ready", "checks": {name: "ok" for name in checks}}
