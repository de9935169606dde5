"""JSON logs with a request id, request latency metrics, and no progress bars in service processes.

``configure_logging`` routes every stdlib logger (uvicorn, celery, sqlalchemy, ours) through structlog's
``ProcessorFormatter`` into one JSON object per line on stderr. ``RequestContextMiddleware`` takes the
client's ``X-Request-ID`` (or makes one), binds it to the log context of the request, echoes it on the
response, records ``dallmi_http_request_duration_seconds`` under the route template and logs one
``request`` line per request.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid

import structlog
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.db import make_sessionmaker
from app.metrics import REQUEST_SECONDS, make_registry
from app.predict.cache import ModelCache

REQUEST_ID_HEADER = "x-request-id"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_HANDLER_NAME = "dallmi-json"
_SHARED_PROCESSORS: list = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]

access_log = structlog.stdlib.get_logger("dallmi.access")


def _drop_color_message(_logger: object, _name: str, event: dict) -> dict:
    event.pop("color_message", None)  # uvicorn's ANSI-coloured copy of the message
    return event


def disable_progress_bars() -> None:
    """No tqdm/transformers/huggingface_hub progress bars in this process (they end up as log lines)."""
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["TQDM_DISABLE"] = "1"
    import huggingface_hub.utils
    import transformers.utils.logging

    transformers.utils.logging.disable_progress_bar()
    huggingface_hub.utils.disable_progress_bars()


def configure_logging(level: int = logging.INFO) -> None:
    """One JSON object per log line on stderr for every logger of the process; safe to call again."""
    structlog.configure(
        processors=[*_SHARED_PROCESSORS, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    root = logging.getLogger()
    if any(handler.get_name() == _HANDLER_NAME for handler in root.handlers):
        return
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_SHARED_PROCESSORS, structlog.stdlib.ExtraAdder(), _drop_color_message],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # no second, plain-text copy
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # RequestContextMiddleware logs every request


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    return getattr(route, "path", None) or "<unmatched>"


class RequestContextMiddleware:
    """Request id in and out, per-route latency histogram, one access log line (pure ASGI)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        request_id = given if _VALID_REQUEST_ID.match(given) else uuid.uuid4().hex
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, (b"x-request-id", request_id.encode())]}
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                seconds = time.perf_counter() - started
                route = _route_template(scope)
                REQUEST_SECONDS.labels(scope["method"], route, str(status)).observe(seconds)
                access_log.info(
                    "request", method=scope["method"], route=route, path=scope["path"], status=status,
                    duration_ms=round(seconds * 1000, 2),
                )  # fmt: skip


def add_observability(app: FastAPI) -> None:
    """Request ids, latency metrics and access logs on every route (``GET /metrics`` is included with the
    other routers, behind a key, in ``app.main.include_routers``)."""
    app.add_middleware(RequestContextMiddleware)


def start_observability(app: FastAPI, *, database_url: str, cache: ModelCache) -> None:
    """At startup: JSON logs, no progress bars, and the scrape-time collector of this app."""
    configure_logging()
    disable_progress_bars()
    app.state.metrics_registry = make_registry(make_sessionmaker(database_url), cache)
