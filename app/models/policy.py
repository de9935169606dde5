"""Where base models may come from: the built-in model, folders under ``DALLMI_MODEL_ROOTS``, hub names
when ``DALLMI_ALLOW_HUB=true``. Model code is never run (no ``trust_remote_code``), and refusals never
tell whether a path exists outside the roots."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

from app.errors import InvalidInputError

BUILTIN_SOURCES = ("minilm-l6",)
_HUB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$")
_LOC = ("body", "source")
NOT_ALLOWED = (
    "source must be 'minilm-l6', an existing model folder holding a config.json under the configured model roots "
    "(DALLMI_MODEL_ROOTS), or a hub name when DALLMI_ALLOW_HUB=true"
)


def _looks_like_path(source: str) -> bool:
    return source.startswith(("/", ".", "~", "\\")) or os.sep in source and not _HUB_NAME.match(source)


def _under_roots(source: str, roots: Sequence[Path]) -> Path | None:
    """The real folder of ``source`` if it is an existing directory inside one of ``roots``, else None."""
    if not source.startswith("/") or "\x00" in source:
        return None
    try:
        real = Path(os.path.realpath(source))  # symlinks resolved: a link out of a root is outside it
        inside = any(real == root or real.is_relative_to(root) for root in roots)
        return real if inside and real.is_dir() else None
    except (OSError, ValueError):
        return None


def _check_folder(folder: Path) -> None:
    config = folder / "config.json"
    try:
        content = json.loads(config.read_text(encoding="utf-8")) if config.is_file() else None
    except (OSError, ValueError) as exc:
        raise InvalidInputError("the folder's config.json is not valid JSON", loc=_LOC) from exc
    if not isinstance(content, dict):  # the same answer as a missing folder: existence is not revealed
        raise InvalidInputError(NOT_ALLOWED, loc=_LOC, type="source_not_allowed")
    if "auto_map" in content:
        raise InvalidInputError(
            "the model needs custom code (auto_map in config.json); model code is never run", loc=_LOC
        )


def classify_source(source: str, *, roots: Sequence[Path], allow_hub: bool) -> tuple[str, bool]:
    """(stored source, whether it needs the Hugging Face hub) for a base model the policy allows.

    Args:
        source: ``minilm-l6``, an absolute folder path or a hub name such as ``org/model``.
        roots: real, absolute folders local models must be inside.
        allow_hub: whether hub names are allowed.

    Raises:
        InvalidInputError: anything else; a folder outside the roots and a missing one get the same message.
    """
    if source in BUILTIN_SOURCES:
        return source, False
    if _looks_like_path(source):
        folder = _under_roots(source, roots)
        if folder is None:
            raise InvalidInputError(NOT_ALLOWED, loc=_LOC, type="source_not_allowed")
        _check_folder(folder)
        return str(folder), False
    if not _HUB_NAME.match(source):
        raise InvalidInputError(NOT_ALLOWED, loc=_LOC, type="source_not_allowed")
    if not allow_hub:
        raise InvalidInputError(
            "hub names are not allowed on this server (DALLMI_ALLOW_HUB=false)", loc=_LOC, type="source_not_allowed"
        )
    return source, True


def hub_allowed(version_allows: bool, settings_allow: bool) -> bool:
    """Whether a worker may download for a version: registered by hub name and hub names still allowed."""
    return version_allows and settings_allow
