"""The FastAPI application: routers, the lifespan and the one mapping of errors to HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import health
from app.config import get_settings
from app.corpora.router import router as corpora_router
from app.db import make_sessionmaker
from app.errors import DomainError
from app.jobs.router import router as jobs_router
from app.limits import add_body_limits
from app.models.router import router as models_router
from app.models.service import ensure_builtin_base_model
from app.observability import add_observability, start_observability
from app.predict.cache import ModelCache
from app.predict.router import router as predict_router


def _error(status_code: int, items: list[dict]) -> JSONResponse:
    return JSONResponse(status_code=status_code, content={"detail": items})


async def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return _error(exc.status_code, [item.to_dict() for item in exc.items])


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return _error(exc.status_code, [{"loc": [], "msg": str(exc.detail), "type": kind}])


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    items = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    return _error(422, items)


async def _unexpected_error(_request: Request, exc: Exception) -> JSONResponse:
    return _error(500, [{"loc": [], "msg": f"internal error: {type(exc).__name__}", "type": "internal_error"}])


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


def create_app() -> FastAPI:
    """The application with every router and error handler."""
    app = FastAPI(
        title="DALLMi service",
        summary="Upload corpora, fine-tune and adapt multi-label classifiers, version them, predict.",
        version="0.1.0",
        lifespan=lifespan,
    )
    for router in (health.router, corpora_router, jobs_router, models_router, predict_router):
        app.include_router(router)
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
    add_body_limits(app)
    add_observability(app)
    return app


app = create_app()
