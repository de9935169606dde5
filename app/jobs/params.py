"""The OpenAPI form of ``dallmi_core.TrainConfig``: every field with its type, choices and range, built from
the dataclass and its ``BOUNDS`` so the schema and the worker's rules cannot drift apart. Contradictions
between fields (e.g. ``device="cpu"`` with ``precision="bf16"``) are left to ``TrainConfig`` itself."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal, get_type_hints

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

from dallmi_core.config import BOUNDS, DEVICE_PATTERN, PRESETS, TrainConfig

API_EXCLUDED = ("extra",)
"""Fields a request cannot set: ``extra`` holds the library's own free-form annotations."""


def _integral(value: Any) -> Any:
    """JSON's ``3.0`` is the integer 3 (JSON Schema says so too); other values go on to strict checks."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _annotation(name: str, hint: Any) -> Any:
    if name == "device":
        return Annotated[str, Field(pattern=DEVICE_PATTERN)]
    if hint is int:
        return Annotated[int, Field(**BOUNDS.get(name, {})), BeforeValidator(_integral)]
    if name in BOUNDS:
        return Annotated[hint, Field(**BOUNDS[name])]
    return hint


def _fields() -> dict[str, Any]:
    hints = get_type_hints(TrainConfig)
    presets = Literal[tuple(PRESETS)]  # type: ignore[valid-type]
    fields: dict[str, Any] = {"preset": (presets, Field(default=None, description="where unset fields come from"))}
    for f in dataclasses.fields(TrainConfig):
        if f.name in API_EXCLUDED:
            continue
        fields[f.name] = (_annotation(f.name, hints[f.name]), Field(default=None, description=f"TrainConfig.{f.name}"))
    return fields


def _no_defaults(schema: dict[str, Any]) -> None:
    """Unset fields come from the preset: the schema shows no default of its own for them."""
    for prop in schema.get("properties", {}).values():
        prop.pop("default", None)


TrainParams: type[BaseModel] = create_model(
    "TrainParams",
    __config__=ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, json_schema_extra=_no_defaults),
    __doc__="Training parameters: any field of dallmi_core.TrainConfig; unset fields come from the preset.",
    **_fields(),
)
