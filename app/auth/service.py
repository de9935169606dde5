"""API keys: create, list, revoke, verify; verified keys are cached briefly (argon2 is slow by design).

A key reads ``dallmi_<prefix>_<secret>``: the 12-hex-digit prefix finds the row (it is stored in clear and
shown by ``dallmi keys list``), the secret is checked against its argon2id hash. Only the hash is stored.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cachetools import TTLCache
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.orm import ApiKey
from app.db import utcnow
from app.errors import InvalidInputError, NotFoundError, UnauthorizedError

PREDICT, TRAIN, ADMIN = "predict", "train", "admin"
SCOPES = (PREDICT, TRAIN, ADMIN)
KEY_TAG = "dallmi"
_PREFIX = re.compile(r"^[0-9a-f]{12}$")
_MAX_KEY_CHARS = 200
# argon2id with OWASP's minimum (19 MiB, 2 passes, 1 lane): the secrets are 256-bit random, so a slower hash
# adds no safety, while 64 MiB per verification (the library default) times the thread pool is a memory risk.
# Each hash records its parameters, so changing them later keeps old keys valid.
_HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
_INVALID = 'Bearer error="invalid_token"'


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's prefix and name (None for the open, keyless mode) and its scopes."""

    prefix: str | None
    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        """True if the key holds ``scope`` or ``admin``."""
        return scope in self.scopes or ADMIN in self.scopes


ANONYMOUS = Principal(prefix=None, name="anonymous (authentication disabled)", scopes=frozenset(SCOPES))


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; every stored time is UTC."""
    return moment.replace(tzinfo=timezone.utc) if moment is not None and moment.tzinfo is None else moment


def check_scopes(scopes: Iterable[str]) -> list[str]:
    """The scopes, deduplicated in canonical order.

    Raises:
        InvalidInputError: none given, or one that is not ``predict``, ``train`` or ``admin``.
    """
    wanted = set(scopes)
    unknown = sorted(wanted - set(SCOPES))
    if unknown or not wanted:
        raise InvalidInputError(
            f"scopes must be a non-empty subset of {', '.join(SCOPES)}; got {sorted(wanted)}", loc=("body", "scopes")
        )
    return [scope for scope in SCOPES if scope in wanted]


def create_key(
    session: Session, *, name: str, scopes: Iterable[str], expires_at: datetime | None = None
) -> tuple[ApiKey, str]:
    """Store a new key and return (its row, the key in clear: shown once, never stored).

    Raises:
        InvalidInputError: unknown or no scopes, or an expiry in the past.
    """
    checked = check_scopes(scopes)
    if expires_at is not None and _aware(expires_at) <= utcnow():  # type: ignore[operator]
        raise InvalidInputError("expires_at must be in the future", loc=("body", "expires_at"))
    prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    row = ApiKey(prefix=prefix, name=name, scopes=checked, secret_hash=_HASHER.hash(secret), expires_at=expires_at)
    session.add(row)
    session.commit()
    return row, f"{KEY_TAG}_{prefix}_{secret}"


def list_keys(session: Session) -> list[ApiKey]:
    """Every key, revoked ones included, oldest first."""
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)).all())


def revoke_key(session: Session, *, prefix: str) -> ApiKey:
    """Revoke the key with this prefix (idempotent: a revoked key stays revoked at its first time).

    Raises:
        NotFoundError: no key has this prefix.
    """
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix.removeprefix(f"{KEY_TAG}_")))
    if row is None:
        raise NotFoundError(f"no API key has the prefix {prefix!r}", loc=("path", "prefix"))
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.commit()
    return row


def count_usable_keys(session: Session) -> int:
    """How many keys are neither revoked nor expired."""
    now = utcnow()
    rows = session.scalars(select(ApiKey.expires_at).where(ApiKey.revoked_at.is_(None))).all()
    return sum(1 for expires in rows if expires is None or _aware(expires) > now)  # type: ignore[operator]


def _split(key: str) -> tuple[str, str]:
    parts = key.split("_", 2)
    if len(key) > _MAX_KEY_CHARS or len(parts) != 3 or parts[0] != KEY_TAG or not _PREFIX.match(parts[1]):
        raise UnauthorizedError("malformed API key: expected dallmi_<prefix>_<secret>", loc=("header", "Authorization"))
    return parts[1], parts[2]


def verify_key(session: Session, *, key: str) -> Principal:
    """The principal of a valid key (and its ``last_used_at`` updated).

    Raises:
        UnauthorizedError: malformed, unknown, wrong secret, revoked or expired (one message for the last
            four, so a caller cannot tell which).
    """
    prefix, secret = _split(key)
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    try:
        valid = row is not None and _HASHER.verify(row.secret_hash, secret)
    except (VerificationError, InvalidHashError):
        valid = False
    expires = _aware(row.expires_at) if row is not None else None
    if row is None or not valid or row.revoked_at is not None or (expires is not None and expires <= utcnow()):
        session.rollback()
        error = UnauthorizedError("invalid, revoked or expired API key", loc=("header", "Authorization"))
        error.headers = {"WWW-Authenticate": _INVALID}
        raise error
    row.last_used_at = utcnow()
    session.commit()
    return Principal(prefix=row.prefix, name=row.name, scopes=frozenset(row.scopes))


class KeyCache:
    """Verified keys of one API process for ``ttl_s`` seconds (bounded), keyed by the key's sha256.

    A revocation is seen by this process at once (``forget``) and by other processes within ``ttl_s``.
    """

    def __init__(self, ttl_s: float, max_size: int = 4096, timer: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._entries: TTLCache[bytes, Principal] = TTLCache(maxsize=max_size, ttl=max(ttl_s, 1e-9), timer=timer)
        self._lock = threading.Lock()

    @staticmethod
    def _digest(key: str) -> bytes:
        return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()

    def get(self, key: str) -> Principal | None:
        """The cached principal of ``key``, or None."""
        with self._lock:
            return self._entries.get(self._digest(key))

    def put(self, key: str, principal: Principal) -> None:
        """Remember a verified key (no-op with a TTL of 0)."""
        if self.ttl_s > 0:
            with self._lock:
                self._entries[self._digest(key)] = principal

    def forget(self, prefix: str) -> None:
        """Drop every cached entry of the key with this prefix."""
        with self._lock:
            for digest in [d for d, p in self._entries.items() if p.prefix == prefix]:
                self._entries.pop(digest, None)


__all__ = [
    "ADMIN", "ANONYMOUS", "PREDICT", "SCOPES", "TRAIN", "KeyCache", "Principal", "check_scopes", "count_usable_keys",
    "create_key", "list_keys", "revoke_key", "verify_key",
]  # fmt: skip
