"""FastAPI dependencies of authentication: who is calling (``authenticate``) and scope checks.

Routers get them as router-level dependencies in ``app.main`` (e.g. ``dependencies=[TrainScope]``), so
route handlers do not change.
"""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.auth.service import ADMIN, ANONYMOUS, PREDICT, TRAIN, KeyCache, Principal, verify_key
from app.config import Settings, SettingsDep
from app.db import SessionDep
from app.errors import ForbiddenError, UnauthorizedError

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key from `dallmi keys create`, sent as `Authorization: Bearer dallmi_<prefix>_<secret>`.",
)
_CACHE_LOCK = threading.Lock()


def key_cache(request: Request, settings: Settings) -> KeyCache:
    """The app's cache of verified keys, made on first use with the configured TTL."""
    with _CACHE_LOCK:
        cache = getattr(request.app.state, "api_key_cache", None)
        if cache is None:
            cache = request.app.state.api_key_cache = KeyCache(settings.auth_cache_ttl_s)
    return cache


def authenticate(
    request: Request,
    settings: SettingsDep,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The caller's principal: everyone when authentication is disabled, else the holder of a valid key.

    Raises:
        UnauthorizedError: no ``Authorization: Bearer`` header, or a key that is not valid.
    """
    if not settings.auth_required:
        return ANONYMOUS
    if credentials is None:
        raise UnauthorizedError(
            "an API key is required: send Authorization: Bearer <key>", loc=("header", "Authorization")
        )
    cache = key_cache(request, settings)
    principal = cache.get(credentials.credentials)
    if principal is None:
        principal = verify_key(session, key=credentials.credentials)
        cache.put(credentials.credentials, principal)
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(authenticate)]


def require_scope(*scopes: str):
    """A dependency that lets a request through when its key holds any of ``scopes`` (or ``admin``).

    Raises (from the dependency):
        ForbiddenError: a valid key without any of the scopes.
    """

    def check(principal: PrincipalDep) -> Principal:
        if not any(principal.allows(scope) for scope in scopes):
            raise ForbiddenError(
                f"API key {principal.name!r} lacks the scope {' or '.join(repr(s) for s in scopes)}",
                loc=("header", "Authorization"),
            )
        return principal

    check.__name__ = f"require_{'_or_'.join(scopes)}"
    return check


PredictScope = Depends(require_scope(PREDICT))
"""``/predict``."""
TrainScope = Depends(require_scope(TRAIN))
"""Corpora, fine-tuning and adaptation, jobs."""
AdminScope = Depends(require_scope(ADMIN))
"""Registering and deleting models, moving aliases, keys."""
AnyScope = Depends(require_scope(PREDICT, TRAIN))
"""Any valid key: reading the registry, ``/metrics``."""

AUTH_RESPONSES: dict[int | str, dict] = {
    401: {"description": "No API key, or a malformed, unknown, revoked or expired one (`WWW-Authenticate: Bearer`)"},
    403: {"description": "The API key lacks the scope this route needs"},
}
"""OpenAPI responses of every route that needs a key (given with the router-level dependency)."""
