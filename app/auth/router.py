"""HTTP routes of API keys (admin scope, set where the router is included)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, status

from app.auth import service
from app.auth.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyPublic, ApiKeysPublic
from app.db import SessionDep
from app.errors import error_responses

router = APIRouter(prefix="/keys", tags=["keys"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ApiKeyCreated, responses=error_responses(400, 422))
def create_key(session: SessionDep, request: ApiKeyCreate):
    """Create a key; the response holds the key in clear, once."""
    row, key = service.create_key(session, name=request.name, scopes=request.scopes, expires_at=request.expires_at)
    return ApiKeyCreated(key=key, **ApiKeyPublic.model_validate(row).model_dump())


@router.get("", response_model=ApiKeysPublic)
def list_keys(session: SessionDep):
    """Every key (without secrets), revoked ones included."""
    data = [ApiKeyPublic.model_validate(row) for row in service.list_keys(session)]
    return ApiKeysPublic(data=data, count=len(data))


@router.delete("/{prefix}", response_model=ApiKeyPublic, responses=error_responses(404, 422))
def revoke_key(session: SessionDep, http: Request, prefix: Annotated[str, Path(pattern=r"^[0-9a-f]{12}$")]):
    """Revoke a key: this API process refuses it at once, other processes within ``DALLMI_AUTH_CACHE_TTL_S``."""
    row = service.revoke_key(session, prefix=prefix)
    cache = getattr(http.app.state, "api_key_cache", None)
    if cache is not None:
        cache.forget(row.prefix)
    return ApiKeyPublic.model_validate(row)
