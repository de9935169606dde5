"""Request body limits enforced while the body streams in (pure ASGI middleware).

A request whose ``Content-Length`` is over its route's limit is answered 413 before a byte of its body is
read. A body without a length (chunked) or with a false one is counted as it arrives: as soon as the count
passes the limit the middleware answers 413, hands the application a client disconnect (so it stops
reading) and drops whatever the application still tries to send. The server then closes the connection
(``Connection: close``), so the rest of the body is never read.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import get_settings

LimitFor = Callable[[Scope], int]
UPLOAD_ENVELOPE_BYTES = 64 * 1024


def _error_response(limit: int) -> tuple[Message, Message]:
    body = json.dumps(
        {
            "detail": [
                {
                    "loc": ["body"],
                    "msg": f"request body is larger than the limit of {limit} bytes",
                    "type": "payload_too_large",
                }
            ]
        }  # fmt: skip
    ).encode()
    start = {
        "type": "http.response.start",
        "status": 413,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ],
    }
    return start, {"type": "http.response.body", "body": body, "more_body": False}


def _content_length(scope: Scope) -> int | None:
    for key, value in scope["headers"]:
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodyLimitMiddleware:
    """413 as soon as a request body passes ``limit_for(scope)`` bytes, counted as it streams."""

    def __init__(self, app: ASGIApp, *, limit_for: LimitFor) -> None:
        self.app, self.limit_for = app, limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        start, body = _error_response(limit)
        length = _content_length(scope)
        if length is not None and length > limit:
            await send(start)
            await send(body)
            return
        received, refused, started = 0, False, False

        async def counting_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    if not started:  # a response already under way is cut off instead
                        await send(start)
                        await send(body)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if not refused:
                started = True
                await send(message)

        await self.app(scope, counting_receive, guarded_send)


def route_limits(*, json_bytes: int, upload_bytes: int, upload_routes: set[tuple[str, str]]) -> LimitFor:
    """Limit per request: ``upload_bytes`` for the (method, path) pairs in ``upload_routes``, else ``json_bytes``."""

    def limit_for(scope: Scope) -> int:
        path, root = scope["path"], scope.get("root_path", "")
        if root and path.startswith(root):  # behind a proxy that mounts the API under a prefix
            path = path[len(root) :]
        return upload_bytes if (scope["method"], path.rstrip("/")) in upload_routes else json_bytes

    return limit_for


def add_body_limits(app: FastAPI) -> None:
    """Install :class:`BodyLimitMiddleware` with the limits of the app's settings (read per request).

    ``POST /corpora`` may send ``DALLMI_MAX_UPLOAD_BYTES`` plus 64 KiB of multipart envelope and form
    fields; every other request ``DALLMI_MAX_JSON_BYTES``.
    """

    def limit_for(scope: Scope) -> int:
        settings = app.dependency_overrides.get(get_settings, get_settings)()
        limits = route_limits(
            json_bytes=settings.max_json_bytes,
            upload_bytes=settings.max_upload_bytes + UPLOAD_ENVELOPE_BYTES,
            upload_routes={("POST", "/corpora")},
        )
        return limits(scope)

    app.add_middleware(BodyLimitMiddleware, limit_for=limit_for)
