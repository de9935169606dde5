"""The FastAPI application: routers, the lifespan and the one mapping of errors to HTTP."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import health
from app.auth.deps import AUTH_RESPONSES, AdminScope, AnyScope, PredictScope, TrainScope
from app.auth.router import router as keys_router
from app.config import get_settings
from app.corpora.router import router as corpora_router
from app.db import make_sessionmaker
from app.errors import DomainError, error_responses
from app.jobs.router import router as jobs_router
from app.limits import add_body_limits
from app.metrics import router as metrics_router
from app.models.router import router as models_router
from app.models.service import ensure_builtin_base_model
from app.observability import add_observability, start_observability
from app.predict.cache import ModelCache
from app.predict.router import router as predict_router


def _error(status_code: int, items: list[dict], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status_code, content={"detail": items}, headers=headers)


async def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return _error(exc.status_code, [item.to_dict() for item in exc.items], exc.headers)


def _allowed_methods(request: Request) -> str | None:
    """Every documented method on this path (Starlette names only those of the first route it tried); as in
    OpenAPI, a concrete path (``/models/base``) is matched before a templated one (``/models/{name}``)."""
    paths = request.app.openapi()["paths"]
    operations = paths.get(request.url.path)
    if operations is None:
        operations = {}
        for template, methods in paths.items():
            if re.fullmatch(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)), request.url.path):
                operations |= methods
    return ", ".join(sorted(method.upper() for method in operations)) or None


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    headers = dict(exc.headers or {})
    if exc.status_code == 405 and (allowed := _allowed_methods(request)):
        headers["Allow"] = allowed
    return _error(exc.status_code, [{"loc": [], "msg": str(exc.detail), "type": kind}], headers=headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    items = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    return _error(422, items)


async def _unexpected_error(_request: Request, exc: Exception) -> JSONResponse:
    # the server drops the connection after an unhandled error: say so, so that clients do not reuse it
    items = [{"loc": [], "msg": f"internal error: {type(exc).__name__}", "type": "internal_error"}]
    return _error(500, items, headers={"Connection": "close"})


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Register the built-in base model and make the model cache; models load on first use."""
    settings = app.dependency_overrides.get(get_settings, get_settings)()
    settings.artifacts_dir.mkdir(parents=True, exist_ok=True)
    with make_sessionmaker(settings.database_url)() as session:
        ensure_builtin_base_model(session, name=settings.builtin_base_model)
    app.state.model_cache = ModelCache(
        max_size=settings.model_cache_size,
        device=settings.device,
        max_batch=settings.predict_batch_size,
        wait_s=settings.predict_batch_wait_ms / 1000,
        threads=settings.predict_threads,
        max_pending=settings.predict_queue_texts,
    )
    start_observability(app, database_url=settings.database_url, cache=app.state.model_cache)
    yield
    app.state.model_cache.close()


ROUTER_RESPONSES = {**AUTH_RESPONSES, **error_responses(413)}
"""Answers every keyed route can give: 401/403 (keys) and 413 (the body limits of ``app.limits``)."""


def include_routers(app: FastAPI) -> None:
    """Every router with the scope its routes need (docs/service.md, "Security model"); ``/health`` and
    ``/ready`` are open. The model routes that change the registry also require ``admin`` themselves."""
    app.include_router(health.router)
    app.include_router(corpora_router, dependencies=[TrainScope], responses=ROUTER_RESPONSES)
    app.include_router(jobs_router, dependencies=[TrainScope], responses=ROUTER_RESPONSES)
    app.include_router(models_router, dependencies=[AnyScope], responses=ROUTER_RESPONSES)
    app.include_router(predict_router, dependencies=[PredictScope], responses=ROUTER_RESPONSES)
    app.include_router(keys_router, dependencies=[AdminScope], responses=ROUTER_RESPONSES)
    app.include_router(metrics_router, dependencies=[AnyScope], responses=ROUTER_RESPONSES)


def create_app() -> FastAPI:
    """The application with every router and error handler."""
    app = FastAPI(
        title="DALLMi service",
        summary="Upload corpora, fine-tune and adapt multi-label classifiers, version them, predict.",
        version="0.1.0",
        lifespan=lifespan,
    )
    include_routers(app)
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
    add_body_limits(app)
    add_observability(app)
    return app


app = create_app()
