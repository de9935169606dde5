"""Domain exceptions. Services raise these; ``app.main`` maps them to HTTP in one place."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


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


class OverloadedError(UnavailableError):
    """Too much work is waiting (e.g. the prediction queue is full); the client should retry later.

    Answered as 503 with a ``Retry-After`` header of ``retry_after_s`` seconds.
    """

    default_type = "overloaded"

    def __init__(self, msg: str, *, retry_after_s: int, loc: Sequence[str | int] = ()) -> None:
        super().__init__(msg, loc=loc)
        self.retry_after_s = retry_after_s
