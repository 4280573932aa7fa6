"""Reads the stack's `agentops:*` keys from Pulumi into a validated `PlatformConfig`."""

from __future__ import annotations

import json
from typing import Any

import pulumi

from contracts.config import (
    NAMESPACE,
    TOP_LEVEL_KEYS,
    ConfigError,
    PlatformConfig,
    load_from_mapping,
)

__all__ = ["StackConfigError", "check_region", "load", "require_secret"]


class StackConfigError(ConfigError, pulumi.RunError):
    """A `ConfigError` the Pulumi engine prints as the message alone, without a traceback."""


def load(config: pulumi.Config | None = None) -> PlatformConfig:
    """The current stack's configuration, validated; StackConfigError otherwise."""
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
    try:
        return load_from_mapping(raw)
    except ConfigError as err:
        raise StackConfigError(err.problems) from None


def require_secret(key: str, purpose: str) -> pulumi.Output[str]:
    """A secret config value, or a StackConfigError telling the operator how to set it."""
    value = pulumi.Config(NAMESPACE).get_secret(key)
    if value is None:
        stack = pulumi.get_stack()
        raise StackConfigError(
            [
                f"{NAMESPACE}:{key} is not set ({purpose}); set it with "
                f"`pulumi config set --secret {NAMESPACE}:{key} <value> --stack {stack}`"
            ]
        )
    return value


def check_region(cfg: PlatformConfig, region: str) -> None:
    """`aws:region` (where the provider creates everything) and the VPC's zones must agree: the
    flow table names the region's S3 and STS hosts from the zones."""
    if cfg.network is not None and cfg.network.region != region:
        raise StackConfigError(
            [
                f"{NAMESPACE}:network.availabilityZones={cfg.network.availability_zones!r}: "
                f"zones of aws:region {region} (these are in {cfg.network.region})"
            ]
        )
