"""Environment variables of a settings model: the names a Deployment sets, from the model itself.

The Pulumi program builds each runtime Deployment's `env` through `settings_env`, so a variable
exists only if the service's settings model has the field (a renamed or removed field fails the
program, not the pod), and values are encoded the way pydantic-settings decodes them (JSON for
lists and maps). docs/runtime-settings.md uses `env_names` for the same names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import Enum
from pathlib import Path

from pydantic import AliasChoices
from pydantic_settings import BaseSettings

__all__ = ["env_name", "env_names", "env_value", "settings_env"]


def env_names(model: type[BaseSettings], field: str) -> list[str]:
    """Every variable that sets `field`, in the order the model tries them."""
    info = model.model_fields.get(field)
    if info is None:
        raise KeyError(f"{model.__name__} has no setting {field!r}")
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    if isinstance(alias, str):
        return [alias]
    prefix = str(model.model_config.get("env_prefix", ""))
    return [f"{prefix}{field}".upper()]


def env_name(model: type[BaseSettings], field: str) -> str:
    """The variable that sets `field` (the first one when the model accepts several)."""
    return env_names(model, field)[0]


def env_value(value: object) -> str:
    """`value` spelled as pydantic-settings reads it back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, str | int | float | Path):
        return str(value)
    if isinstance(value, list | tuple | dict):
        # Complex fields are parsed as JSON; compact and sorted, so a plan diff is stable.
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    raise TypeError(f"no environment spelling for {type(value).__name__}")


def settings_env(model: type[BaseSettings], values: Mapping[str, object]) -> dict[str, str]:
    """`{VARIABLE: value}` for the given fields of `model`; an unknown field is an error."""
    return {env_name(model, field): env_value(value) for field, value in values.items()}
