"""Reads the stack's `agentops:*` keys into a validated `PlatformConfig`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pulumi
from pydantic import ValidationError

from contracts.config.errors import NAMESPACE, ConfigError, format_validation_error
from contracts.config.platform import PlatformConfig

__all__ = ["TOP_LEVEL_KEYS", "load", "load_from_mapping", "require_secret"]

TOP_LEVEL_KEYS: tuple[str, ...] = tuple(
    field.alias or name for name, field in PlatformConfig.model_fields.items()
)


def load_from_mapping(raw: Mapping[str, Any]) -> PlatformConfig:
    """Validate already-parsed values keyed by their top-level names (`cluster`, ...)."""
    try:
        return PlatformConfig.model_validate(dict(raw))
    except ValidationError as err:
        raise format_validation_error(err) from None


def load(config: pulumi.Config | None = None) -> PlatformConfig:
    """The current stack's configuration, validated; ConfigError otherwise."""
    cfg = config or pulumi.Config(NAMESPACE)
    raw: dict[str, Any] = {}
    for key in TOP_LEVEL_KEYS:
        text = cfg.get(key)
        if text is None:
            continue
        try:
            raw[key] = json.loads(text)
        except json.JSONDecodeError:
            # Plain scalars (environment: prod) are stored unquoted.
            raw[key] = text
    return load_from_mapping(raw)


def require_secret(key: str, purpose: str) -> pulumi.Output[str]:
    """A secret config value, or a ConfigError telling the operator how to set it."""
    value = pulumi.Config(NAMESPACE).get_secret(key)
    if value is None:
        stack = pulumi.get_stack()
        raise ConfigError(
            [
                f"{NAMESPACE}:{key} is not set ({purpose}); set it with "
                f"`pulumi config set --secret {NAMESPACE}:{key} <value> --stack {stack}`"
            ]
        )
    return value
