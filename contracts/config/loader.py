"""Validates the stack's `agentops:*` values into a `PlatformConfig` (reading them from Pulumi
is `infra.stack_config`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from contracts.config.errors import format_validation_error
from contracts.config.platform import PlatformConfig

__all__ = ["TOP_LEVEL_KEYS", "load_from_mapping"]

TOP_LEVEL_KEYS: tuple[str, ...] = tuple(
    field.alias or name for name, field in PlatformConfig.model_fields.items()
)


def load_from_mapping(raw: Mapping[str, Any]) -> PlatformConfig:
    """Validate already-parsed values keyed by their top-level names (`cluster`, ...)."""
    try:
        return PlatformConfig.model_validate(dict(raw))
    except ValidationError as err:
        raise format_validation_error(err) from None
