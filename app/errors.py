"""Domain exceptions. Services raise these; ``app.main`` maps them to HTTP in one place."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel


@dataclass(frozen=True)
class ErrorItem:
    """One entry of the error body, shaped like FastAPI's own validation errors."""

    loc: Sequence[str | int]
    msg: str
    type: str

    def to_dict(self) -> dict:
        """The JSON form ``{"loc", "msg", "type"}``."""
        return {"loc": list(self.loc), "msg": self.msg, "type": self.type}


class DomainError(Exception):
    """Base of every service error: an HTTP status and one or more error items."""

    status_code = 400
    default_type = "error"
    headers: dict[str, str] | None = None
    """Extra response headers (e.g. ``WWW-Authenticate``)."""

    def __init__(
        self,
        msg: str = "",
        *,
        loc: Sequence[str | int] = (),
        type: str | None = None,
        items: Sequence[ErrorItem] = (),
    ) -> None:
        self.items = list(items) or [ErrorItem(loc=tuple(loc), msg=msg, type=type or self.default_type)]
        super().__init__("; ".join(item.msg for item in self.items))


class NotFoundError(DomainError):
    """A referenced resource does not exist."""

    status_code = 404
    default_type = "not_found"


class ConflictError(DomainError):
    """The request clashes with the current state."""

    status_code = 409
    default_type = "conflict"


class InvalidInputError(DomainError):
    """The request is well-formed but its content is unacceptable."""

    status_code = 422
    default_type = "value_error"


class PayloadTooLargeError(DomainError):
    """An upload is over the configured limit."""

    status_code = 413
    default_type = "payload_too_large"


class UnavailableError(DomainError):
    """A dependency (database, broker, artifact store, model files) cannot be used now."""

    status_code = 503
    default_type = "unavailable"


class UnauthorizedError(DomainError):
    """No API key, or one that is unknown, revoked or expired (RFC 6750: ``WWW-Authenticate: Bearer``)."""

    status_code = 401
    default_type = "unauthorized"
    headers = {"WWW-Authenticate": "Bearer"}


class ForbiddenError(DomainError):
    """A valid API key without the scope the route needs."""

    status_code = 403
    default_type = "forbidden"


class ErrorDetail(BaseModel):
    """One problem: where (``loc``), what (``msg``) and its kind (``type``)."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(BaseModel):
    """The one error shape of every 4xx and 5xx answer, FastAPI's own 422 included."""

    detail: list[ErrorDetail]


_DESCRIPTIONS = {
    400: "Bad request",
    401: "Missing or invalid API key",
    403: "The API key lacks the scope this route needs",
    404: "A resource named in the request does not exist",
    409: "The request clashes with the current state",
    413: "The request body is over the configured limit",
    422: "The request is malformed or its content unacceptable",
    503: "A dependency (database, broker, artifact store, model files) cannot be used now",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries documenting these error status codes with :class:`ErrorBody`."""
    return {code: {"model": ErrorBody, "description": _DESCRIPTIONS.get(code, "Error")} for code in codes}


class OverloadedError(UnavailableError):
    """Too much work is waiting (e.g. the prediction queue is full); the client should retry later.

    Answered as 503 with a ``Retry-After`` header of ``retry_after_s`` seconds.
    """

    default_type = "overloaded"

    def __init__(self, msg: str, *, retry_after_s: int, loc: Sequence[str | int] = ()) -> None:
        super().__init__(msg, loc=loc)
        self.retry_after_s = retry_after_s
        self.headers = {"Retry-After": str(retry_after_s)}
