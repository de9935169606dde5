"""``dallmi keys create/list/revoke`` and the bind policy of ``dallmi serve``."""

from __future__ import annotations

import ipaddress
import logging
from datetime import timedelta
from typing import Annotated

import typer

from app.auth import service
from app.config import Settings, get_settings
from app.db import make_sessionmaker, utcnow
from app.errors import DomainError

log = logging.getLogger("dallmi.auth")
keys_app = typer.Typer(
    help="API keys: create, list, revoke (stored hashed; a key is shown once).", no_args_is_help=True
)


class BindRefused(Exception):
    """``dallmi serve`` must not start with these settings on this address."""


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_policy(host: str, settings: Settings, usable_keys: int) -> str:
    """The ``DALLMI_AUTH`` that ``dallmi serve`` runs the API with on ``host``.

    A loopback address with ``DALLMI_AUTH`` unset and no usable key runs open; otherwise keys are required,
    unless ``DALLMI_AUTH=disabled`` on a loopback address.

    Raises:
        BindRefused: a non-loopback address with ``DALLMI_AUTH=disabled``, or without any usable key.
    """
    if is_loopback(host):
        if settings.auth is None and usable_keys == 0:
            return "disabled"
        return settings.auth or "required"
    if settings.auth == "disabled":
        raise BindRefused(f"DALLMI_AUTH=disabled is only allowed on a loopback address, not {host}")
    if usable_keys == 0:
        raise BindRefused(
            f"refusing to serve on {host} without an API key: create one first with "
            "`dallmi keys create --name admin --scope admin`, or bind 127.0.0.1"
        )
    return "required"


def announce(mode: str, host: str, usable_keys: int) -> None:
    """The start-up log line that says whether the API needs keys."""
    if mode == "disabled":
        log.warning("authentication disabled: the API on %s accepts requests without an API key", host)
    elif usable_keys == 0:
        log.warning("authentication required but no usable API key exists: create one with `dallmi keys create`")
    else:
        log.warning("authentication required: %d usable API key(s)", usable_keys)


def _session():
    from app.migrate import prestart

    settings = get_settings()
    prestart(settings)
    return make_sessionmaker(settings.database_url)()


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Option(help="who or what the key is for")],
    scope: Annotated[list[str], typer.Option(help="predict, train or admin (repeat for several)")],
    expires_days: Annotated[int | None, typer.Option(min=1, max=36500, help="days until it expires")] = None,
) -> None:
    """Create a key and print it (stdout, alone on its line): it is shown this once."""
    expires_at = utcnow() + timedelta(days=expires_days) if expires_days else None
    with _session() as session:
        try:
            row, key = service.create_key(session, name=name, scopes=scope, expires_at=expires_at)
        except DomainError as exc:
            raise typer.BadParameter(str(exc), param_hint="--scope") from exc
    typer.echo(f"created key {row.prefix} ({', '.join(row.scopes)}); store it now, it is not shown again:", err=True)
    typer.echo(key)


@keys_app.command("list")
def list_keys() -> None:
    """Every key: prefix, name, scopes, state, created, expires, last used."""
    with _session() as session:
        rows = service.list_keys(session)
    for row in rows:
        state = "revoked" if row.revoked_at else "active"
        expires = row.expires_at.isoformat(timespec="seconds") if row.expires_at else "never"
        used = row.last_used_at.isoformat(timespec="seconds") if row.last_used_at else "never"
        created = row.created_at.isoformat(timespec="seconds")
        typer.echo(f"{row.prefix}\t{row.name}\t{','.join(row.scopes)}\t{state}\t{created}\t{expires}\t{used}")


@keys_app.command("revoke")
def revoke(prefix: Annotated[str, typer.Argument(help="the key's prefix (from `dallmi keys list`)")]) -> None:
    """Revoke a key; running API processes refuse it within DALLMI_AUTH_CACHE_TTL_S seconds."""
    with _session() as session:
        try:
            row = service.revoke_key(session, prefix=prefix)
        except DomainError as exc:
            raise typer.BadParameter(str(exc), param_hint="PREFIX") from exc
    typer.echo(f"revoked {row.prefix} ({row.name})")
